"""The state tracker: agent states per queue from the real AMI events (agents/state.py holds
the states and their store).

States: logged_out (no field), idle, ringing, on_call, wrapup, paused (with reason and since),
unavailable. Asterisk facts used (captures in tests/fixtures/ami/):
- member events and QueueStatus items are read as queues.picture.Member (the field names and
  the device-state numbers are interpreted there only); `InCall` is racy (AMI note 12), so it
  is not used for the state.
- AgentCalled -> AgentConnect -> AgentComplete for an answered call (a_answered, ami9);
  AgentRingNoAnswer (RingTime in ms, note 11) when a member rang and did not answer (ami9).
- A member's Status goes back to 1 right after AgentComplete (ami9); wrap-up is therefore the
  engine's view: `wrapup_seconds` after AgentComplete (Asterisk's own `wrapuptime` in
  queues.conf should be set to the same value so that no call is offered meanwhile).
The agent is found by the member's Interface -> phone -> the login on that phone; members that
are no engine login (static members such as `Agent 1001` in the lab) are ignored.
"""
from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger

from ccengine.agents.serial import Serial
from ccengine.agents.state import AgentStateStore, MemberState, from_member, interface_pattern, \
    keep_since
from ccengine.queues.picture import member_from
from ccengine.store import keys
from ccengine.store.base import StoreUnavailable

log = Logger()


class StateTracker:
    """Applies member and agent events to the stored states; auto-pauses after N no-answers."""

    MEMBER_EVENTS = ("QueueMemberAdded", "QueueMemberPause", "QueueMemberStatus",
                     "QueueMemberRemoved", "AgentCalled", "AgentConnect", "AgentComplete",
                     "AgentRingNoAnswer")

    def __init__(self, directory: Any, store: AgentStateStore, actions: Any, settings: Any,
                 clock: Any, metrics: Any):
        self.directory = directory       # agents.directory.AgentDirectory
        self.store = store
        self.actions = actions           # agents.actions.MemberActions
        self.settings = settings         # config.AgentsConfig
        self.clock = clock
        self.metrics = metrics
        self._phone = interface_pattern(settings.interface_template)

    # A member's status and pause events say what the member IS now: under a storm (more than
    # COALESCE_FROM events waiting), of several waiting for the same member only the newest
    # is handled, in its own place among the transitions (called, connected, ...), which are
    # all handled one by one. At most BACKLOG
    # events wait; past that they are dropped and one QueueStatus resync (the feed's) puts
    # every state right.
    COALESCED = frozenset({"queuememberstatus", "queuememberpause"})
    COALESCE_FROM = 100     # events waiting before merging starts (normally each is handled)
    BACKLOG = 5000

    def attach(self, feed: Any, serial: Serial) -> None:
        """Read the member and agent events from the queue feed (ccengine/queues/feed.py)."""
        self._serial = serial
        self._feed = feed
        self._slots: dict[int, Any] = {}                 # queued status events by sequence
        self._newest: dict[tuple[str, str], int] = {}    # member -> its newest slot
        self._last: tuple[tuple[str, str], int] | None = None   # the last event queued
        self._seq = 0
        self._waiting = 0
        self._resync_asked = False
        feed.on(self.MEMBER_EVENTS, self.push)

    def push(self, msg: Any) -> None:
        """One event from the feed, queued for `handle` (merged or dropped under a storm)."""
        event = (msg.get("Event") or "").lower()
        key = (msg.get("Queue") or "", msg.get("Interface") or "")
        merged = self.metrics.event_backlog.labels("merged")
        storm = self._waiting >= self.COALESCE_FROM
        if storm and event in self.COALESCED and self._last is not None \
                and self._last[0] == key and self._last[1] in self._slots:
            self._slots[self._last[1]] = msg           # nothing between them: replaced in place
            merged.inc()
            return
        if self._waiting >= self.BACKLOG:
            self.metrics.event_backlog.labels("dropped").inc()
            self._ask_resync()
            return
        self._waiting += 1
        if event not in self.COALESCED:
            self._last = None
            self._serial.run_for(key[1], self._handle_one, msg)
            return
        self._seq += 1
        older = self._newest.get(key)
        if storm and older is not None and self._slots.pop(older, None) is not None:
            merged.inc()                                 # the older one will be skipped
        self._slots[self._seq] = msg
        self._newest[key] = self._seq
        self._last = (key, self._seq)
        self._serial.run_for(key[1], self._handle_slot, self._seq)

    async def _handle_slot(self, seq: int) -> None:
        self._waiting -= 1
        msg = self._slots.pop(seq, None)
        if msg is None:
            return
        key = (msg.get("Queue") or "", msg.get("Interface") or "")
        if self._newest.get(key) == seq:
            del self._newest[key]
        await self._handle_safely(msg)

    async def _handle_one(self, msg: Any) -> None:
        self._waiting -= 1
        await self._handle_safely(msg)

    async def _handle_safely(self, msg: Any) -> None:
        try:
            await self.handle(msg)
        except StoreUnavailable as exc:
            # The state was not written: a QueueStatus resync writes what Asterisk says.
            log.warn("agent event not stored ({exc}); a QueueStatus resync follows", exc=exc)
            self._ask_resync()

    def _ask_resync(self) -> None:
        if self._resync_asked:
            return
        self._resync_asked = True
        log.warn("agent events: a resync from QueueStatus follows (backlog of {n} full, or "
                 "Redis failed)", n=self.BACKLOG)

        def resync() -> None:
            self._resync_asked = False
            for server in self._feed.servers:
                self._feed.resync(server)
        self.clock.callLater(1.0, resync)

    async def handle(self, msg: Any) -> None:
        match = self._phone.fullmatch(msg.get("Interface") or "")
        queue = msg.get("Queue") or ""
        if match is None or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", queue):
            return
        session, states = await self.store.session_on_phone(match.group(1))
        if session is None:
            return
        number, now, event = session.number, self.clock.seconds(), msg.event
        current = states.get(queue)
        if event == "QueueMemberRemoved":
            await self.store.drop(number, queue)
            return
        if event in ("QueueMemberAdded", "QueueMemberPause", "QueueMemberStatus"):
            member = member_from(msg)
            if member is None:
                return
            new = from_member(member, current, now, self.settings.wrapup_seconds)
        elif current is not None and current.state == "paused":
            new = current          # a paused member can still finish a call; keep the pause
            if event == "AgentConnect":
                await self._reset_no_answer(number)
        elif event == "AgentCalled":
            new = keep_since(current, "ringing", "", now)
        elif event == "AgentConnect":
            new = keep_since(current, "on_call", "", now)
            await self._reset_no_answer(number)
        elif event == "AgentComplete":
            new = MemberState("wrapup" if self.settings.wrapup_seconds > 0 else "idle", "", now)
        else:  # AgentRingNoAnswer
            new = MemberState("idle", "", now)
            await self.store.put(number, queue, new)
            await self._no_answer(session)
            return
        if new != current:
            await self.store.put(number, queue, new)

    async def _reset_no_answer(self, number: str) -> None:
        await self.store.conn.call(lambda r: r.delete(keys.agent_no_answer(number)))

    async def _no_answer(self, session: Any) -> None:
        key = keys.agent_no_answer(session.number)
        count = await self.store.conn.call(lambda r: r.incr(key))
        if count < self.settings.no_answer_limit:
            return
        await self._reset_no_answer(session.number)
        reason = self.settings.no_answer_reason
        await self.actions.pause(session.interface, True, reason)
        now = self.clock.seconds()
        for queue in session.queues:
            await self.store.put(session.number, queue, MemberState("paused", reason, now))
        self.metrics.paused(reason)
