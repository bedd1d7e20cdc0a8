"""What the console shows, as plain data: queues, agents, tickets, staffing advice, audit.

Built from the one queue picture (ccengine/queues/picture.py: members, waiting callers), the
floor figures (window.py), the agents' stored states (agents/state.py, its in-memory
snapshot), and Redis for what the picture does not know (who the agents are, each waiting
caller's call record, callbacks pending, tickets, the audit log). Redis reads are cached
briefly and refreshed when the picture says something changed, so a busy floor re-renders
the page without a Redis read per agent per change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

from twisted.logger import Logger

from ccengine.agents.staffing import understaffed_queues
from ccengine.agents.state import MemberState, effective
from ccengine.calls import hours
from ccengine.console import erlang
from ccengine.console.window import Counts, QueueWindows
from ccengine.store.base import StoreUnavailable

log = Logger()
CACHE_SECONDS = 5.0
DUE_SOON = 3600.0          # a ticket whose deadline is within an hour is "due soon"
# The order a mixed agent shows in: the most urgent state of any of their queues wins.
STATE_ORDER = ("on_call", "ringing", "wrapup", "paused", "idle", "unavailable")


@dataclass(frozen=True)
class WaitingCaller:
    uniqueid: str
    position: int
    since: float            # first entry of this stay (call record's `started` when known)
    tier: str = ""          # vip / known / new ('' unknown: no call record)
    language: str = ""
    category: str = ""
    customer: str = ""      # caller-supplied data (customer record): escaped by the page


@dataclass(frozen=True)
class QueueView:
    name: str
    waiting: tuple[WaitingCaller, ...]
    callbacks: int
    today: Counts
    recent: Counts
    service_level_seconds: int
    sl_target: float
    logged_in: int
    staffing: int
    available: int
    min_available: int
    open: bool
    advice: erlang.Advice | None       # None: no arrivals or no handle time in the window

    @property
    def longest_since(self) -> float | None:
        return min((c.since for c in self.waiting), default=None)

    @property
    def understaffed(self) -> bool:
        return self.open and self.staffing < self.min_available


@dataclass(frozen=True)
class AgentView:
    number: str
    name: str
    phone: str
    state: str
    queue: str               # the queue of the state shown (on a call in ...)
    reason: str
    since: float
    handled: int
    queues: tuple[str, ...]
    last_for: tuple[str, ...] = ()   # queues a pause would leave under their minimum


@dataclass(frozen=True)
class TicketView:
    id: str
    state: str
    level: str
    owner: str
    customer: str
    queue: str
    deadline: float
    overdue: bool
    due_soon: bool


@dataclass(frozen=True)
class Snapshot:
    now: float
    queues: tuple[QueueView, ...]
    agents: tuple[AgentView, ...]
    tickets: tuple[TicketView, ...]
    audit: tuple[Mapping[str, Any], ...]
    ami_synced: bool
    pause_reasons: Mapping[str, str] = field(default_factory=dict)


class _Cached:
    def __init__(self, loader: Any, seconds: float = CACHE_SECONDS):
        self.loader = loader
        self.seconds = seconds
        self.value: Any = None
        self.at = -1e18

    def invalidate(self) -> None:
        self.at = -1e18

    async def get(self, now: float, default: Any) -> Any:
        if now - self.at < self.seconds and self.value is not None:
            return self.value
        try:
            self.value = await self.loader()
            self.at = now
        except StoreUnavailable as exc:
            log.warn("console: Redis read failed ({e}); showing what was read before", e=exc)
        return self.value if self.value is not None else default


class Board:
    def __init__(self, config: Any, clock: Any, picture: Any, windows: QueueWindows,
                 directory: Any, states: Any, records: Any, callbacks: Any, tickets: Any,
                 audit: Any):
        self.config = config
        self.clock = clock
        self.picture = picture
        self.windows = windows
        self.records = records
        self.states = states
        self._agents = _Cached(lambda: self._load_agents(directory))
        self._callbacks = _Cached(lambda: callbacks.pending_counts())
        self._tickets = _Cached(lambda: tickets.list("active", limit=100))
        self._audit = _Cached(lambda: audit.recent(20))
        self._calls: dict[str, Mapping[str, str]] = {}     # uniqueid -> call record

    def agents_changed(self) -> None:
        self._agents.invalidate()

    def tickets_changed(self) -> None:
        self._tickets.invalidate()

    def audit_changed(self) -> None:
        self._audit.invalidate()

    async def snapshot(self) -> Snapshot:
        now = self.clock.seconds()
        sessions, names = await self._agents.get(now, ({}, {}))
        callbacks = await self._callbacks.get(now, {})
        tickets = await self._tickets.get(now, [])
        audit = await self._audit.get(now, [])
        await self._load_calls()
        local = hours.local_now(now, self.config.company.timezone)
        queues = tuple(self._queue(name, q, callbacks.get(name, 0), now, local)
                       for name, q in sorted(self.config.queues.items()))
        return Snapshot(now, queues, self._agent_views(sessions, names, now, local),
                        tuple(_ticket(t, now) for t in sorted(tickets, key=lambda t: t.deadline)),
                        tuple(audit), bool(self.picture.synced),
                        dict(self.config.agents.pause_reasons))

    # --- queues ---------------------------------------------------------------------------
    def _queue(self, name: str, q: Any, callbacks: int, now: float, local: Any) -> QueueView:
        members = self.picture.queue_members(name)
        waiting = tuple(self._caller(c) for c in self.picture.waiting(name))
        recent = self.windows.recent(name)
        today = self.windows.today(name)
        return QueueView(
            name=name, waiting=waiting, callbacks=int(callbacks), today=today, recent=recent,
            service_level_seconds=q.service_level_seconds, sl_target=q.sl_target,
            logged_in=sum(1 for m in members if m.logged_in),
            staffing=sum(1 for m in members if m.staffing),
            available=sum(1 for m in members if m.available),
            min_available=q.min_available_agents, open=hours.is_open(q, local),
            advice=self._advice(name, q, recent, today))

    def _advice(self, name: str, q: Any, recent: Counts, today: Counts) -> erlang.Advice | None:
        rate = self.windows.arrival_rate(name)
        talk = recent.handle_time if recent.handle_time is not None else today.handle_time
        if rate <= 0 or talk is None:
            return None
        handle = talk + self.config.agents.wrapup_seconds
        return erlang.agents_needed(rate, handle, q.service_level_seconds, q.sl_target)

    def _caller(self, caller: Any) -> WaitingCaller:
        record = self._calls.get(caller.uniqueid) or {}
        since = caller.entered
        return WaitingCaller(caller.uniqueid, caller.position, since,
                             record.get("tier", ""), record.get("language", ""),
                             record.get("category", ""), record.get("customer", ""))

    async def _load_calls(self) -> None:
        present = {c.uniqueid for c in self.picture.callers.values()}
        for gone in [u for u in self._calls if u not in present]:
            del self._calls[gone]
        for uniqueid in sorted(present - set(self._calls))[:200]:
            try:
                self._calls[uniqueid] = await self.records.get(uniqueid)
            except (StoreUnavailable, ValueError):
                self._calls[uniqueid] = {}      # no record (not routed by us) or Redis down

    # --- agents ---------------------------------------------------------------------------
    @staticmethod
    async def _load_agents(directory: Any) -> tuple[dict, dict]:
        sessions = await directory.sessions()
        names = {record.number: record.name for record, _ in await directory.records()}
        return sessions, names

    def _agent_views(self, sessions: Mapping[str, Any], names: Mapping[str, str], now: float,
                     local: Any) -> tuple[AgentView, ...]:
        wrapup = self.config.agents.wrapup_seconds
        snapshot: Mapping[tuple[str, str], MemberState] = self.states.snapshot
        per_agent: dict[str, dict[str, MemberState]] = {}
        for (number, queue), stored in snapshot.items():
            if number in sessions:
                per_agent.setdefault(number, {})[queue] = stored
        out = []
        for number, session in sorted(sessions.items()):
            state, queue, ms = _shown(per_agent.get(number, {}), now, wrapup)
            last = understaffed_queues(number, session.queues, per_agent, self.config.queues,
                                       now, local, wrapup)
            out.append(AgentView(number, names.get(number, ""), session.phone, state, queue,
                                 ms.reason if ms else "", ms.since if ms else session.since,
                                 self.windows.handled.get(number, 0),
                                 tuple(sorted(session.queues)), tuple(last)))
        return tuple(out)


def _shown(states: Mapping[str, MemberState], now: float,
           wrapup: float) -> tuple[str, str, MemberState | None]:
    if not states:
        return "unavailable", "", None
    ranked = sorted(states.items(), key=lambda kv: STATE_ORDER.index(
        effective(kv[1], now, wrapup)) if effective(kv[1], now, wrapup) in STATE_ORDER else 99)
    queue, ms = ranked[0]
    return effective(ms, now, wrapup), queue, ms


def _ticket(ticket: Any, now: float) -> TicketView:
    return TicketView(ticket.id, ticket.state, ticket.level, ticket.owner, ticket.customer,
                      ticket.queue, ticket.deadline, ticket.deadline < now,
                      now <= ticket.deadline < now + DUE_SOON)

