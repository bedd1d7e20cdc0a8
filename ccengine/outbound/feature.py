"""Wiring of the outbound dialler: the dialler service on ctx.clock, AGI routes `survey` and
`outbound-answer`, the OriginateResponse subscription and the after-login channel check."""
from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ccengine.ami.protocol import AmiError
from ccengine.feature import EngineContext, Feature
from ccengine.outbound.answer import OutboundAnswerRoute
from ccengine.outbound.dialler import Dialler
from ccengine.outbound.jobs import Job, JobStore
from ccengine.outbound.metrics import OutboundMetrics
from ccengine.outbound.pacing import AgentPool
from ccengine.outbound.sources import Sources
from ccengine.outbound.survey import SurveyRoute
from ccengine.outbound.windows import CallingWindow
from ccengine.outbound.worker import DiallerService
from ccengine.store.base import StoreUnavailable
from ccengine.calls.records import CallRecordStore

log = Logger()


class CallRecords:
    """Saves the call record of an answered outbound call under its ChannelId (= uniqueid of
    the ;1 channel, where the survey route stores the score)."""

    def __init__(self, records: CallRecordStore, clock: Any):
        self.records = records
        self.clock = clock

    async def answered(self, job: Job, channel_id: str) -> None:
        now = self.clock.seconds()
        await self.records.save(channel_id, now, {
            "started": f"{now:.3f}", "direction": "outbound", "outbound_kind": job.kind,
            "outbound_job": job.id, "caller": job.number, "queue": job.queue,
            "origin": job.origin})


def build(ctx: EngineContext, *, records: CallRecordStore, callbacks: Any = None,
          directory: Any = None, states: Any = None) -> Feature:
    """`callbacks`: the waiting feature's CallbackStore (callbacks become jobs); `directory` and
    `states`: the agents feature's AgentDirectory and AgentStateStore (pacing by free agents)."""
    config = ctx.config.outbound
    queues = set(ctx.config.queues)
    metrics = OutboundMetrics(ctx.registry, queues)
    jobs = JobStore(ctx.redis)
    default_tz = ctx.config.company.timezone
    sources = Sources(ctx.redis, jobs, default_tz, callbacks=callbacks)
    pool = None
    if directory is not None and states is not None:
        pool = AgentPool(ctx.redis, directory, states, ctx.config.agents.wrapup_seconds)
    feature = Feature(routes={
        "survey": SurveyRoute(ctx.prompter, records, metrics, ctx.clock, config.survey_queues,
                              queues),
        "outbound-answer": OutboundAnswerRoute(jobs, ctx.prompter)})
    if ctx.ami is None:
        log.warn("outbound dialler disabled: AMI is not configured")
        return feature
    dialler = Dialler(ctx.ami, jobs, config, ctx.clock, metrics, pool,
                      on_final=sources.finish_job,
                      on_answered=CallRecords(records, ctx.clock).answered)
    dialler.attach()
    service = DiallerService(jobs, dialler, sources, pool, CallingWindow.from_config(config),
                             config, ctx.config.waiting, metrics, ctx.clock, default_tz)
    dialler.active = lambda: bool(service.running)
    feature.singletons.append(service)

    async def check_after_login() -> None:
        if not dialler.active():
            return
        try:
            await dialler.check_inflight()
        except (AmiError, StoreUnavailable) as exc:
            # The lease of each unchecked dial ends later; the service checks it again then.
            log.warn("outbound channel check after login failed: {exc}", exc=exc)
    feature.on_ami_connected.append(check_after_login)
    return feature
