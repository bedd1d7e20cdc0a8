"""Wiring of the complaints feature. Takes the engine's call records and the agent directory;
provides (ComplaintsFeature) the repeat-complainant check for the hotline and the Complaints
service."""
from __future__ import annotations

from dataclasses import dataclass

from twisted.application.service import IService
from twisted.internet.defer import Deferred

from ccengine.agents.directory import AgentDirectory
from ccengine.complaints.api import ComplaintsResource
from ccengine.complaints.escalation import TransferStore, WarmEscalation
from ccengine.complaints.followup import FollowUpRoute, FollowUpScheduler
from ccengine.complaints.metrics import ComplaintMetrics
from ccengine.complaints.repeat import RepeatComplainants
from ccengine.complaints.service import Complaints
from ccengine.complaints.store import TicketStore
from ccengine.complaints.sweeper import DeadlineSweeper
from ccengine.complaints.waiting import WaitingComplainants
from ccengine.feature import EngineContext, Feature
from ccengine.queues.picture import QueuePicture
from ccengine.calls.records import CallRecordStore


@dataclass(kw_only=True)
class ComplaintsFeature(Feature):
    repeat: RepeatComplainants
    complaints: Complaints


def build(ctx: EngineContext, *, records: CallRecordStore,
          directory: AgentDirectory) -> ComplaintsFeature:
    settings = ctx.config.complaints
    metrics = ComplaintMetrics(ctx.registry)
    store = TicketStore(ctx.redis, settings.deadline_hours)
    followups = FollowUpScheduler(ctx.redis, ctx.clock, settings.followup_after_hours)
    complaints = Complaints(store, metrics, ctx.clock, settings.deadline_hours, followups)
    repeat = RepeatComplainants(store, ctx.clock, settings.repeat_days, settings.repeat_priority,
                                settings.complaint_queue, metrics)
    escalation = WarmEscalation(settings, complaints, TransferStore(ctx.redis), repeat, ctx.ami,
                                ctx.clock, call_records=records, agent_directory=directory)

    on_connected = []
    picture = ctx.queues.picture if ctx.queues is not None else QueuePicture(ctx.clock)
    if ctx.queues is not None:
        # On every engine (ami.shared): the engine whose AGI started a transfer has it in
        # `pending`, and TransferStore.take is atomic, so one engine records each outcome.
        ctx.queues.on(("AttendedTransfer",), escalation.on_attended_transfer,
                      owner_only=False)
        ctx.queues.on(("Hangup",), escalation.on_hangup, owner_only=False)
        on_connected.append(lambda: Deferred.fromCoroutine(escalation.resync()))
    services: list[IService] = [
        DeadlineSweeper(complaints, ctx.ami, ctx.clock, settings.sweep_interval),
        WaitingComplainants(ctx.redis, ctx.ami, picture, ctx.clock, metrics,
                            settings.complaint_queue, settings.supervisor_queue,
                            settings.wait_limit_seconds, settings.wait_check_interval),
    ]
    return ComplaintsFeature(
        repeat=repeat, complaints=complaints,
        routes={"escalate": escalation, "followup": FollowUpRoute(complaints, ctx.prompter)},
        singletons=services,
        api={"complaints": ComplaintsResource(complaints, ctx.api_token,
                                              ctx.config.http.max_body_bytes)},
        on_ami_connected=on_connected)
