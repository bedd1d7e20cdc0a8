"""Repeat complainants: a caller with an active complaint, or one opened in the last
`repeat_days` days, goes to the complaint queue with higher priority, and the agent gets the
ticket id on the channel (CC_TICKET_ID). The hotline asks `check(number)`; app.py hands it
the complaints feature's `repeat` (ComplaintsFeature).

On the hotline's critical path the size of the caller's ticket index is read with the
recognition (`index_key`, CustomerStore.lookup), and the tickets are read only for a number
that has any (`check_index`): a caller who never complained costs no round trip here.
"""
from __future__ import annotations

import re

from ccengine.complaints.store import TicketStore
from ccengine.store import keys

_NUMBER_RE = re.compile(r"^\+?[0-9]{1,32}$")


class RepeatComplainants:
    def __init__(self, store: TicketStore, clock, repeat_days: int, priority: int,
                 queue: str, metrics=None):
        self.store = store
        self.clock = clock
        self.repeat_days = repeat_days
        self.priority = priority          # added to the caller's queue priority
        self.queue = queue                # the complaint queue
        self.metrics = metrics

    async def check(self, number: str) -> str | None:
        """The ticket to put on the channel: the newest active ticket of the caller, else the
        newest opened in the last `repeat_days` days, else None. Raises StoreUnavailable."""
        if not _NUMBER_RE.fullmatch(number or ""):
            return None
        since = self.clock.seconds() - self.repeat_days * 86400
        tickets = await self.store.recent_for_number(number, since)
        if not tickets:
            return None
        active = [t for t in tickets if t.active]
        chosen = max(active or tickets, key=lambda t: t.opened)
        if self.metrics is not None:
            self.metrics.repeat_callers.inc()
        return chosen.id

    def index_key(self, number: str) -> str | None:
        """The key of the caller's ticket index (a sorted set) for CustomerStore.lookup to
        count; None for a number that cannot have tickets."""
        if not _NUMBER_RE.fullmatch(number or ""):
            return None
        return keys.complaints_by_number(number)

    async def check_index(self, number: str, indexed: int) -> str | None:
        """`check(number)` when the size of the index at `index_key` is already known: no Redis
        access at all for a number without tickets. Raises StoreUnavailable."""
        if not indexed:
            return None
        return await self.check(number)

    async def active_ticket(self, number: str) -> str | None:
        """The newest active ticket of the caller, or None."""
        if not _NUMBER_RE.fullmatch(number or ""):
            return None
        tickets = await self.store.recent_for_number(number, self.clock.seconds())
        active = [t for t in tickets if t.active]
        return max(active, key=lambda t: t.opened).id if active else None
