"""The deadline sweeper: every `sweep_interval` seconds, escalate each ticket whose level
deadline passed, send the pending notifications, refresh the open/overdue gauges.

Exactly once per level: the escalation re-checks "still active, deadline passed, not at the
chain end" inside the store's WATCH/MULTI, so a second sweeper (or a restarted engine running
the same sweep again) finds nothing left to do for a ticket already moved on. Nothing is lost
on a restart mid-sweep: the due index and the notification outbox live in Redis and the next
sweep, in this process or a new one, picks up where the last stopped.

Notification: AMI `UserEvent: CCTicketEscalated` with Ticket, Level, Reason, Deadline (epoch)
and ChainEnd (0/1); every value is checked against a strict pattern before it is sent, and a
malformed outbox entry is logged and dropped rather than sent.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from twisted.logger import Logger

from ccengine.ami.client import AmiNotConnected
from ccengine.ami.protocol import AmiError
from ccengine.complaints.service import Complaints
from ccengine.complaints.tickets import LEVELS, REASONS, TICKET_ID_RE, TicketError, TicketNotFound
from ccengine.store.base import StoreUnavailable
from ccengine.runtime.periodic import PeriodicService

log = Logger()
USER_EVENT = "CCTicketEscalated"
LOCK_SECONDS = 60
_EPOCH_RE = re.compile(r"^[0-9]{1,12}$")


class BadNotification(ValueError):
    """An outbox entry that must not become an AMI action."""


def user_event_fields(raw: str) -> dict[str, str]:
    """The UserEvent fields for one outbox entry; raises BadNotification."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadNotification(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadNotification("not an object")
    fields = {"Ticket": str(data.get("ticket", "")), "Level": str(data.get("level", "")),
              "Reason": str(data.get("reason", "")), "Deadline": str(data.get("deadline", "")),
              "ChainEnd": "1" if data.get("chain_end") is True else "0"}
    if not TICKET_ID_RE.fullmatch(fields["Ticket"]):
        raise BadNotification("ticket id")
    if fields["Level"] not in LEVELS or fields["Reason"] not in REASONS:
        raise BadNotification("level or reason")
    if not _EPOCH_RE.fullmatch(fields["Deadline"]):
        raise BadNotification("deadline")
    return fields


class DeadlineSweeper(PeriodicService):
    name = "complaints-sweeper"  # type: ignore[assignment]  # Twisted types Service.name as None
    run_at_start = True

    def __init__(self, complaints: Complaints, ami: Any, clock: Any, interval: float,
                 batch: int = 100):
        super().__init__(clock, interval)
        self.complaints = complaints
        self.store = complaints.store
        self.ami = ami
        self.batch = batch

    async def round(self) -> int:
        return await self.sweep()

    async def sweep(self, max_batches: int | None = None) -> int:
        """One sweep; returns the number of tickets escalated (or marked chain end)."""
        done = 0
        try:
            batches = 0
            while max_batches is None or batches < max_batches:
                batches += 1
                now = self.clock.seconds()
                ids = await self.store.due(now, self.batch)
                moved = 0
                for ticket_id in ids:
                    moved += await self._escalate(ticket_id)
                done += moved
                if len(ids) < self.batch or moved == 0:
                    break
            await self.flush_outbox()
            open_count, overdue = await self.store.counts(self.clock.seconds())
            self.complaints.metrics.set_counts(open_count, overdue)
        except StoreUnavailable as exc:
            log.warn("complaint sweep stopped, Redis unavailable: {exc}; next sweep retries",
                     exc=exc)
        return done

    async def _escalate(self, ticket_id: str) -> int:
        try:
            await self.complaints.escalate(ticket_id, "overdue", by="sweeper")
        except (TicketError, TicketNotFound) as exc:
            # Someone else moved it on (resolved, assigned upwards, another sweeper): nothing to do.
            log.debug("ticket {id} not escalated: {exc}", id=ticket_id, exc=exc)
            return 0
        return 1

    async def flush_outbox(self) -> int:
        """Send pending notifications as AMI UserEvents; returns how many were sent."""
        token = uuid.uuid4().hex
        if not await self.store.lock_outbox(token, LOCK_SECONDS):
            return 0            # another sweeper is sending them
        try:
            return await self._send_outbox()
        finally:
            await self.store.unlock_outbox(token)

    async def _send_outbox(self) -> int:
        sent = 0
        for raw in await self.store.outbox(self.batch):
            try:
                fields = user_event_fields(raw)
            except BadNotification as exc:
                log.error("dropping malformed complaint notification ({exc}): {raw!r:.200}",
                          exc=exc, raw=raw)
                await self.store.outbox_done(raw)
                continue
            if self.ami is None:
                await self.store.outbox_done(raw)    # AMI disabled: the log line is all we have
                continue
            try:
                await self.ami.send_action("UserEvent", UserEvent=USER_EVENT, **fields)
            except AmiNotConnected:
                log.info("AMI not connected; {n} complaint notification(s) wait in the outbox",
                         n=1)
                break
            except AmiError as exc:
                log.warn("UserEvent {ev} for ticket {id} failed: {exc}; retried next sweep",
                         ev=USER_EVENT, id=fields["Ticket"], exc=exc)
                break
            await self.store.outbox_done(raw)
            sent += 1
        return sent
