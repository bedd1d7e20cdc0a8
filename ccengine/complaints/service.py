"""What every entry point (AGI routes, sweeper, HTTP API, CLI) does with tickets: one place
that runs the transition in the store, counts it, and logs it.

Escalation notifications go through the outbox (`cc:complaints:outbox`), written in the same
transaction as the escalation; the sweeper sends them as AMI UserEvents and removes them once
Asterisk accepted them. A crash between the two sends the notification again later, never
escalates twice.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping

from twisted.logger import Logger

from ccengine.complaints import tickets as t
from ccengine.complaints.metrics import ComplaintMetrics
from ccengine.complaints.store import TicketStore
from ccengine.complaints.tickets import ComplaintTicket

log = Logger()


def _notification(reason: str, now: float):
    def build(new: ComplaintTicket, entry: dict) -> dict:
        return {"ticket": new.id, "level": new.level, "reason": reason,
                "deadline": int(new.deadline), "chain_end": new.chain_end, "at": int(now)}
    return build


class Complaints:
    def __init__(self, store: TicketStore, metrics: ComplaintMetrics, clock: Any,
                 deadline_hours: Mapping[str, int], followups: Any = None):
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.deadline_hours = dict(deadline_hours)
        self.followups = followups          # FollowUpScheduler, or None

    def now(self) -> float:
        return self.clock.seconds()

    async def open(self, **fields: str) -> ComplaintTicket:
        ticket = await self.store.open(self.now(), **fields)
        self.metrics.opened.inc()
        log.info("complaint ticket {id} opened by {agent} (queue {queue}, category {category})",
                 id=ticket.id, agent=ticket.agent, queue=ticket.queue, category=ticket.category)
        return ticket

    async def escalate(self, ticket_id: str, reason: str, *, to_level: str | None = None,
                       by: str = "", note: str = "") -> ComplaintTicket:
        now = self.now()
        old, new = await self.store.change(
            ticket_id,
            lambda tk: t.escalate(tk, now, self.deadline_hours, reason=reason, to_level=to_level,
                                  by=by, note=note),
            notify=_notification(reason, now))
        self._count_escalation(old, new, reason)
        return new

    def _count_escalation(self, old: ComplaintTicket, new: ComplaintTicket, reason: str) -> None:
        if new.chain_end and not old.chain_end:
            self.metrics.chain_end.inc()
            log.warn("complaint ticket {id} is overdue at level {lvl}, the end of the "
                     "escalation chain; it stays there", id=new.id, lvl=new.level)
        else:
            self.metrics.escalated(new.level, reason)
            log.info("complaint ticket {id} escalated {old} -> {new} ({reason}); deadline {dl}",
                     id=new.id, old=old.level, new=new.level, reason=reason, dl=int(new.deadline))

    async def assign(self, ticket_id: str, owner: str, by: str = "") -> ComplaintTicket:
        now = self.now()
        _, new = await self.store.change(ticket_id, lambda tk: t.assign(tk, now, owner, by))
        return new

    async def resolve(self, ticket_id: str, outcome: str, by: str = "") -> ComplaintTicket:
        now = self.now()
        _, new = await self.store.change(ticket_id, lambda tk: t.resolve(tk, now, outcome, by))
        log.info("complaint ticket {id} resolved by {by}", id=new.id, by=by or "?")
        if self.followups is not None and new.number:
            job_id = await self.followups.schedule(new)
            _, new = await self.store.change(
                ticket_id, lambda tk: t.followup_scheduled(tk, self.now(), job_id))
            self.metrics.followups.labels("scheduled").inc()
        return new

    async def close(self, ticket_id: str, by: str = "", note: str = "") -> ComplaintTicket:
        now = self.now()
        _, new = await self.store.change(ticket_id, lambda tk: t.close(tk, now, by, note))
        self.metrics.closed_ticket(t.within_limit(new))
        return new

    async def followup_result(self, ticket_id: str, satisfied: bool) -> ComplaintTicket:
        now = self.now()
        reason = "followup"
        old, new = await self.store.change(
            ticket_id, lambda tk: t.followup_result(tk, now, satisfied, self.deadline_hours),
            notify=None if satisfied else _notification(reason, now))
        self.metrics.followups.labels("satisfied" if satisfied else "unsatisfied").inc()
        if satisfied and old.state != "closed":
            self.metrics.closed_ticket(t.within_limit(new))
        if not satisfied:
            self.metrics.escalated("supervisor", reason)
            log.info("complaint ticket {id}: customer not satisfied, reopened at supervisor "
                     "level", id=new.id)
        return new

    async def note(self, ticket_id: str, event: str, **extra: Any) -> ComplaintTicket:
        now = self.now()
        _, new = await self.store.change(ticket_id, lambda tk: t.note(tk, now, event, **extra))
        return new
