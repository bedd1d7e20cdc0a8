"""AGI route `survey`: one question, a score 1-5 by DTMF, stored with the call record.

Reached from [ccengine-survey] (dialplans/extensions_ccengine.conf) in two ways:
- post-call: the caller's channel after the agent hung up (Queue option c); AGI arguments
  `<queue>` (FILTER(a-z)). Offered only for queues listed in outbound.survey_queues. The call
  record id is the channel's uniqueid (the hotline stored the record under it, CC_CALL_ID).
- outbound survey campaign: the answered ;1 half of the Originate; arguments `<queue>,<job>`.
  Its uniqueid is the Originate's ChannelId, under which the dialler saved the call record.
One retry on no input or a key outside 1-5; then thanks, or nothing stored.
"""
from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger

from ccengine.agi.channel import CallerHungUp
from ccengine.store.base import StoreUnavailable

log = Logger()
JOB_ID_RE = re.compile(r"^[a-z]{2}-[0-9A-Za-z._-]{1,60}$")
TRIES = 2


def score_of(digits: str) -> int | None:
    return int(digits) if digits in ("1", "2", "3", "4", "5") else None


class SurveyRoute:
    script = "survey"

    def __init__(self, prompter: Any, records: Any, metrics: Any, clock: Any,
                 survey_queues: tuple[str, ...], queues: set[str], timeout_ms: int = 5000):
        self.prompter = prompter
        self.records = records          # store.calls.CallRecordStore
        self.metrics = metrics          # OutboundMetrics
        self.clock = clock
        self.survey_queues = set(survey_queues)
        self.queues = queues
        self.timeout_ms = timeout_ms

    def wanted(self, queue: str, job_id: str) -> bool:
        return bool(job_id) or queue in self.survey_queues

    async def handle(self, channel: Any) -> None:
        args = channel.env.args
        queue = args[0] if args and args[0] in self.queues else ""
        job_id = args[1] if len(args) > 1 and JOB_ID_RE.fullmatch(args[1]) else ""
        if not self.wanted(queue, job_id):
            return
        lang = self.prompter.language(channel.env.language)
        score = None
        try:
            for _ in range(TRIES):
                score = score_of(await self.prompter.ask(channel, "survey_question", lang, 1,
                                                         self.timeout_ms, terminator=""))
                if score is not None:
                    break
            if score is not None:
                await self.prompter.play(channel, "survey_thanks", lang)
        except CallerHungUp:
            if score is None:
                return            # hung up before answering: nothing to store
        if score is None:
            return
        self.metrics.survey_score(queue or "other", score)
        fields = {"survey_score": score, "survey_at": f"{self.clock.seconds():.3f}"}
        if job_id:
            fields["outbound_job"] = job_id
        try:
            stored = await self.records.update(channel.env.uniqueid, fields)
        except StoreUnavailable as exc:
            log.warn("survey score {score} not stored: {exc}", score=score, exc=exc)
            return
        if not stored:
            log.info("survey score for unknown call record {id}", id=channel.env.uniqueid[:64])

    async def on_watchdog(self, channel: Any) -> None:
        return None   # the dialplan hangs up after the survey whatever happens
