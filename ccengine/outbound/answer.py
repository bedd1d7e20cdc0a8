"""AGI route `outbound-answer`: a called-back customer answered ([ccengine-outbound-queue]).

Says who is calling (prompt callback_outbound_intro) and sets the queue priority the
callback request carried (QUEUE_PRIO = the caller's old place, docs/waiting.md), then
CC_ROUTE_OK=1 last. The job is found by the channel variable CCENGINE_JOB that the Originate
set (dialler.py); anything unexpected still queues the customer (the dialplan's default).
"""
from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger

from ccengine.store.base import StoreUnavailable

log = Logger()
JOB_ID_RE = re.compile(r"^[a-z]{2}-[0-9A-Za-z._-]{1,60}$")


class OutboundAnswerRoute:
    script = "outbound-answer"

    def __init__(self, jobs: Any, prompter: Any):
        self.jobs = jobs
        self.prompter = prompter

    async def handle(self, channel: Any) -> None:
        job_id = await channel.get_variable("CCENGINE_JOB") or ""
        job = None
        if JOB_ID_RE.fullmatch(job_id):
            try:
                job = await self.jobs.get(job_id)
            except StoreUnavailable as exc:
                log.warn("outbound-answer without the job ({exc})", exc=exc)
        lang = self.prompter.language(job.language if job is not None and job.language
                                      else channel.env.language)
        await self.prompter.play(channel, "callback_outbound_intro", lang)
        await channel.set_variable("CC_PRIORITY", str(max(job.priority, 0) if job else 0))
        await channel.acknowledge()

    async def on_watchdog(self, channel: Any) -> None:
        return None   # without CC_ROUTE_OK the dialplan queues the customer anyway
