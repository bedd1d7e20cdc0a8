"""Agent state per queue, kept in Redis (`cc:agent:state:{number}`): the states, how a queue
member's fields map to one (`from_member`), and the store. The events that change them are
applied by agents/tracker.py.

States: logged_out (no field), idle, ringing, on_call, wrapup, paused (with reason and since),
unavailable. Wrap-up is the engine's view: `wrapup_seconds` after AgentComplete (see
agents/tracker.py).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from ccengine.agents.directory import AgentSession, session_from_reply
from ccengine.queues.picture import Member
from ccengine.store import keys
from ccengine.store.base import LuaScript, RedisConnection, hgetall_many

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


def keep_since(previous: MemberState | None, state: str, reason: str, since: float) -> MemberState:
    if previous is not None and previous.state == state and previous.reason == reason:
        return previous
    return MemberState(state, reason, since)


def from_member(member: Member, previous: MemberState | None, now: float,
                wrapup_seconds: float = 0) -> MemberState:
    """State from a member of the queue picture (member events and QueueStatus alike)."""
    if member.paused:
        last_pause = member.last_pause
        since = last_pause if last_pause and (previous is None or previous.state != "paused") else now
        return keep_since(previous, "paused", member.reason, since)
    state = _BY_DEVICE.get(member.state, "idle")
    if state == "idle" and previous is not None:
        if previous.state == "on_call" and wrapup_seconds > 0:
            return MemberState("wrapup", "", now)
        if previous.state == "wrapup" and effective(previous, now, wrapup_seconds) == "wrapup":
            return previous
    return keep_since(previous, state, "", now)


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
            if not reply[0]:
                return None, {}
            session = session_from_reply(reply[0], reply[1])
            flat = reply[2]
            return session, (_states_of(dict(zip(flat[::2], flat[1::2])))
                             if session is not None else {})
        return self.conn.script(_ON_PHONE, [keys.agent_phone(phone)],
                                [keys.AGENT_SESSION_PREFIX, keys.AGENT_STATE_PREFIX]
                                ).addCallback(read)

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
            hashes = await hgetall_many(r, [keys.agent_state(n) for n in numbers])
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
