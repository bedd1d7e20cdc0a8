"""Follow-up calls after a resolution, and their result.

`FollowUpScheduler.schedule(ticket)` enqueues a job for the outbound dialler (issue 6) in
Redis; the exact format is in docs/complaints.md ("Follow-up jobs"): a hash
`cc:outbound:followup:{job}` and the job id in the sorted set `cc:outbound:followups` with
score = the earliest time to call. The dialler applies its calling window, retries and
do-not-call list, calls the customer and sends the answered call to AGI
`followup` with the ticket id as first argument.

`FollowUpRoute` (AGI `followup`): asks "satisfied? 1 = yes, 2 = no", records the answer on the
ticket (satisfied -> closed; not satisfied -> reopened at supervisor level) and thanks the
customer. No valid key after two tries: nothing is recorded (the ticket stays resolved).
"""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ccengine.complaints.service import Complaints
from ccengine.complaints.tickets import ComplaintTicket, TicketError, TicketNotFound, TICKET_ID_RE
from ccengine.store import keys
from ccengine.store.base import RedisConnection

log = Logger()
JOB_KIND = "complaint_followup"


class FollowUpScheduler:
    def __init__(self, conn: RedisConnection, clock: Any, delay_hours: float):
        self.conn = conn
        self.clock = clock
        self.delay = delay_hours * 3600.0

    def schedule(self, ticket: ComplaintTicket) -> Deferred:
        """Enqueue the follow-up call; fires with the job id. One job per ticket and resolution:
        re-scheduling the same resolution overwrites the job instead of adding a second call."""
        now = self.clock.seconds()
        job_id = f"cf-{ticket.id}-{int(ticket.resolved_at or now)}"
        not_before = now + self.delay
        job = {"kind": JOB_KIND, "job": job_id, "ticket": ticket.id, "number": ticket.number,
               "language": ticket.language, "queue": ticket.queue, "created": f"{now:.3f}",
               "not_before": f"{not_before:.3f}", "agi_script": "followup",
               "agi_args": ticket.id, "attempts": "0"}

        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.hset(keys.outbound_followup(job_id), mapping=job)
                p.zadd(keys.OUTBOUND_FOLLOWUPS, {job_id: not_before})
                await p.execute()
            return job_id
        return self.conn.call(op)


class FollowUpRoute:
    script = "followup"

    def __init__(self, complaints: Complaints, prompter: Any, digit_timeout_ms: int = 6000):
        self.complaints = complaints
        self.prompter = prompter
        self.digit_timeout_ms = digit_timeout_ms

    async def handle(self, channel: Any) -> None:
        args = channel.env.args
        ticket_id = args[0] if args else ""
        if not TICKET_ID_RE.fullmatch(ticket_id):
            log.warn("followup without a valid ticket id ({arg!r:.30})", arg=ticket_id)
            return
        lang = channel.env.language
        answer = ""
        for _ in range(2):
            answer = await self.prompter.ask(channel, "complaint_followup_question", lang,
                                             max_digits=1, timeout_ms=self.digit_timeout_ms)
            if answer in ("1", "2"):
                break
        if answer in ("1", "2"):
            try:
                await self.complaints.followup_result(ticket_id, satisfied=answer == "1")
            except (TicketError, TicketNotFound) as exc:
                log.warn("follow-up answer for ticket {id} not recorded: {exc}", id=ticket_id,
                         exc=exc)
            await self.prompter.play(channel, "complaint_followup_thanks", lang)
        await channel.acknowledge()

    async def on_watchdog(self, channel: Any) -> None:
        await channel.acknowledge()
