"""Agent state per queue, from the real AMI events, kept in Redis (`cc:agent:state:{number}`).

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

import json
import re
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.python.failure import Failure

from twisted.logger import Logger

from ccengine.agents.directory import AgentSession
from ccengine.queues.picture import Member, member_from
from ccengine.store import keys
from ccengine.store.base import LuaScript, RedisConnection, StoreUnavailable

log = Logger()
STATES = ("logged_out", "idle", "ringing", "on_call", "wrapup", "paused", "unavailable")
AVAILABLE = frozenset({"idle", "ringing", "on_call", "wrapup"})   # logged in and not paused
# Agent state from the member's device state (queues.picture names them; numbers live there).
_BY_DEVICE = {"in_use": "on_call", "busy": "on_call", "ringinuse": "on_call", "onhold": "on_call",
              "ringing": "ringing", "invalid": "unavailable", "unavailable": "unavailable"}


@dataclass(frozen=True)
class MemberState:
    state: str
    reason: str = ""
    since: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"state": self.state, "reason": self.reason, "since": self.since},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MemberState | None:
        try:
            raw = json.loads(text)
            state = raw["state"]
        except (ValueError, KeyError, TypeError):
            return None
        if state not in STATES:
            return None
        return cls(state, str(raw.get("reason", "")), float(raw.get("since", 0)))


def effective(ms: MemberState, now: float, wrapup_seconds: float) -> str:
    """The state to show: wrap-up ends `wrapup_seconds` after it began."""
    if ms.state == "wrapup" and now >= ms.since + wrapup_seconds:
        return "idle"
    return ms.state


def _keep_since(previous: MemberState | None, state: str, reason: str, since: float) -> MemberState:
    if previous is not None and previous.state == state and previous.reason == reason:
        return previous
    return MemberState(state, reason, since)


def from_member(member: Member, previous: MemberState | None, now: float,
                wrapup_seconds: float = 0) -> MemberState:
    """State from a member of the queue picture (member events and QueueStatus alike)."""
    if member.paused:
        last_pause = member.last_pause
        since = last_pause if last_pause and (previous is None or previous.state != "paused") else now
        return _keep_since(previous, "paused", member.reason, since)
    state = _BY_DEVICE.get(member.state, "idle")
    if state == "idle" and previous is not None:
        if previous.state == "on_call" and wrapup_seconds > 0:
            return MemberState("wrapup", "", now)
        if previous.state == "wrapup" and effective(previous, now, wrapup_seconds) == "wrapup":
            return previous
    return _keep_since(previous, state, "", now)


class Serial:
    """Runs the agents' event handlers and resyncs in arrival order, one member at a time:
    each awaits Redis, and two handlers of the same member interleaving would store an older
    state last. `run` is exclusive (a resync, a FullyBooted): it starts once everything
    queued before it is done, and everything queued after it waits for it. `run_for(key, ...)`
    (one member's event) waits for the member's previous event and for the last exclusive
    one only, so events of different members overlap: one chain of Redis round trips for
    every member's events could not follow 600 member events a second (the centre bench)."""

    # Member events running at once, at most: unbounded, a backlog of thousands took every
    # connection of redis-py's pool at once and other Redis work (a login's PIN check) timed out.
    CONCURRENCY = 32

    def __init__(self, concurrency: int = CONCURRENCY) -> None:
        self._slots = DeferredSemaphore(concurrency)
        self._exclusive: Deferred | None = None        # the last exclusive task queued
        self._by_key: dict[Any, Deferred] = {}         # each member's last event queued
        self._since: dict[Deferred, None] = {}        # member events since that exclusive

    def run(self, func: Any, *args: Any) -> Deferred:
        before = [d for d in (self._exclusive, *self._since) if d is not None]
        done = self._after(before, func, args)
        self._exclusive, self._by_key, self._since = done, {}, {}
        return _observed(done)

    def run_for(self, key: Any, func: Any, *args: Any) -> Deferred:
        before = [d for d in (self._exclusive, self._by_key.get(key)) if d is not None]
        done = self._after(before, func, args, self._slots)
        self._by_key[key] = done
        self._since[done] = None
        done.addBoth(self._finished, key, done)
        return _observed(done)

    def _finished(self, result: Any, key: Any, done: Deferred) -> Any:
        if self._by_key.get(key) is done:
            del self._by_key[key]
        self._since.pop(done, None)
        return result

    @staticmethod
    def _after(before: list[Deferred], func: Any, args: tuple,
               slots: DeferredSemaphore | None = None) -> Deferred:
        """A Deferred that fires with func(*args)'s result once every one of `before` has
        fired (whatever their results: a failed task does not stop the next), holding one of
        `slots` while it runs."""
        async def task() -> Any:
            for d in before:
                await _settled(d)
            if slots is None:
                return await func(*args)
            await slots.acquire()
            try:
                return await func(*args)
            finally:
                slots.release()
        return Deferred.fromCoroutine(task())

    def drained(self) -> Deferred:
        """Fires once nothing is queued any more, including work queued by queued work."""
        async def drain() -> None:
            while self._exclusive is not None or self._since:
                pending = [d for d in (self._exclusive, *self._since) if d is not None]
                for d in pending:
                    await _settled(d)
                if self._exclusive is not None and self._exclusive.called and not self._since:
                    self._exclusive = None
        return Deferred.fromCoroutine(drain())


def _settled(d: Deferred) -> Deferred:
    """Fires (with None) when `d` has fired, without taking or changing its result."""
    out: Deferred = Deferred()

    def fire(result: Any) -> Any:
        if not out.called:
            out.callback(None)
        return result
    d.addBoth(fire)
    return out


def _observed(d: Deferred) -> Deferred:
    """What callers of run/run_for get: `d`'s result, on a Deferred of its own."""
    out: Deferred = Deferred()

    def fire(result: Any) -> Any:
        out.callback(result) if not isinstance(result, Failure) else out.errback(result)
        return None
    d.addBoth(fire)
    return out


def interface_pattern(template: str) -> re.Pattern:
    """`PJSIP/{phone}` -> a regex that gives the phone back from an Interface."""
    before, _, after = template.partition("{phone}")
    return re.compile("^" + re.escape(before) + r"([A-Za-z0-9_]{1,40})" + re.escape(after) + "$")


# KEYS: the phone's binding. ARGV: the session key and the state key without the number.
# Returns {number, session hash, state hash} (flat field/value lists), or {false}.
_ON_PHONE = LuaScript("""
local number = redis.call('GET', KEYS[1])
if not number or number == '' then return {false} end
return {number, redis.call('HGETALL', ARGV[1] .. number), redis.call('HGETALL', ARGV[2] .. number)}
""")
# KEYS: the agent's state hash. ARGV: queue, state JSON.
_PUT = LuaScript("return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])")
_SESSION_PREFIX = keys.agent_session("0")[:-1]
_STATE_PREFIX = keys.agent_state("0")[:-1]


def _pairs(flat: list) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2]))


class AgentStateStore:
    """Per-agent per-queue states in Redis, plus the in-memory copy metrics read at scrape."""

    def __init__(self, conn: RedisConnection):
        self.conn = conn
        self.snapshot: dict[tuple[str, str], MemberState] = {}
        self.listeners: list[Any] = []      # called with the agent number after each change

    def _changed(self, number: str) -> None:
        for listener in list(self.listeners):
            listener(number)

    def get(self, number: str) -> Deferred:
        async def op(r):
            return _states_of(await r.hgetall(keys.agent_state(number)))
        return self.conn.call(op)

    def session_on_phone(self, phone: str) -> Deferred:
        """(the session of the agent logged in on `phone` or None, that agent's states): what
        AgentDirectory.session_on_phone and get() read, in one script (one round trip on the
        lane instead of three; the state tracker does this for every member event)."""
        def read(reply: list) -> tuple[AgentSession | None, dict[str, MemberState]]:
            number = reply[0]
            if not number:
                return None, {}
            keys.agent_session(number)          # a stored number that is no id: BadKeyPart
            session = AgentSession.from_hash(number, _pairs(reply[1]))
            return session, _states_of(_pairs(reply[2])) if session is not None else {}
        return self.conn.script(_ON_PHONE, [keys.agent_phone(phone)],
                                [_SESSION_PREFIX, _STATE_PREFIX]).addCallback(read)

    def put(self, number: str, queue: str, ms: MemberState) -> Deferred:
        """Store one queue's state (HSET, as a script on the lane: the state tracker writes
        for most member events, and redis-py's per-command cost and its pool were the larger
        part of that write's CPU in the centre bench)."""
        keys.id_part(queue)
        key = keys.agent_state(number)
        self.snapshot[(number, queue)] = ms
        self._changed(number)
        return self.conn.script(_PUT, [key], [queue, ms.to_json()])

    def drop(self, number: str, queue: str | None = None) -> Deferred:
        if queue is None:
            for key in [k for k in self.snapshot if k[0] == number]:
                del self.snapshot[key]
            self._changed(number)
            return self.conn.call(lambda r: r.delete(keys.agent_state(number)))
        self.snapshot.pop((number, queue), None)
        self._changed(number)
        return self.conn.call(lambda r: r.hdel(keys.agent_state(number), queue))

    def get_many(self, numbers: list[str]) -> Deferred:
        """Every listed agent's states, {number: {queue: MemberState}}, as `get` reads them,
        in one pipelined round trip."""
        async def op(r):
            if not numbers:
                return {}
            async with r.pipeline(transaction=False) as p:
                for number in numbers:
                    p.hgetall(keys.agent_state(number))
                hashes = await p.execute()
            return {number: _states_of(raw) for number, raw in zip(numbers, hashes)}
        return self.conn.call(op)

    async def load(self, numbers: list[str]) -> dict[str, dict[str, MemberState]]:
        """Read every listed agent's states and make them the metrics snapshot (one round
        trip: a resync of 2,000 agents made 2,000 sequential HGETALLs)."""
        states = await self.get_many(numbers)
        self.snapshot = {(n, q): ms for n, per in states.items() for q, ms in per.items()}
        self._changed("")
        return states


def _states_of(raw: dict[str, str]) -> dict[str, MemberState]:
    """An agent's state hash as {queue: MemberState}; unreadable fields are left out."""
    out = {}
    for queue, text in raw.items():
        ms = MemberState.from_json(text)
        if ms is not None:
            out[queue] = ms
    return out


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
            new = _keep_since(current, "ringing", "", now)
        elif event == "AgentConnect":
            new = _keep_since(current, "on_call", "", now)
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

