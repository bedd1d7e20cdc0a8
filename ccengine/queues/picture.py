"""The one picture of Asterisk's queues: members and waiting callers, from AMI.

Asterisk's field quirks live here and nowhere else, each backed by a capture (tests/fixtures/ami):
- member events (QueueMemberAdded/Status/Pause/Removed) name the member `MemberName` and its
  channel `Interface`; QueueStatus's `QueueMember` items name them `Name` and `Location`; both
  carry `StateInterface`, `Status`, `Paused`, `PausedReason`, `InCall`, `LastCall`,
  `Wrapuptime`, `LastPause`
  (c_member_actions, ami9_pause_rna_incall, d_queuestatus_*);
- `Status` is the device state of include/asterisk/devicestate.h: 0 unknown, 1 not in use,
  2 in use, 3 busy, 4 invalid, 5 unavailable, 6 ringing, 7 ringing and in use, 8 on hold;
- a waiting caller: QueueCallerJoin / QueueCallerLeave carry `Queue`, `Uniqueid`, `Channel`,
  `Position` and `Count` (their `Priority` is the DIALPLAN priority, not the queue priority);
  QueueStatus's `QueueEntry` has `Position`, `Wait` (seconds in the current Queue() call) and
  `Priority` (the queue priority) (d_queuestatus_waiting_caller, ami6_queue_priority_withdraw).

Who is "available" follows app_queue itself (apps/app_queue.c, `is_member_available()`): a
member whose device is invalid or unavailable is never rung; not in use AND unknown (0) are
rung when not paused; in use, busy, ringing and on hold only with ringinuse, which the shipped
queues set off. "Staffing" (what a wait estimate divides by, what the staffing guard counts) is
a member whose device is not invalid/unavailable and who is not paused.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any
from collections.abc import Callable, Iterable

NOT_LOGGED_IN = frozenset({"4", "5"})          # invalid, unavailable: never rung
# include/asterisk/devicestate.h, enum ast_device_state (AST_DEVICE_*), by number.
DEVICE_STATES = {"0": "unknown", "1": "not_in_use", "2": "in_use", "3": "busy", "4": "invalid",
                 "5": "unavailable", "6": "ringing", "7": "ringinuse", "8": "onhold"}
FREE = frozenset({"0", "1"})                    # unknown, not in use: rung when not paused
MEMBER_EVENTS = ("QueueMemberAdded", "QueueMemberStatus", "QueueMemberPause",
                 "QueueMemberRemoved")
CALLER_EVENTS = ("QueueCallerJoin", "QueueCallerLeave")


@dataclass(frozen=True)
class Member:
    queue: str
    interface: str
    name: str
    status: str
    paused: bool
    reason: str = ""
    in_call: bool = False       # InCall: app_queue's own flag (racy, AMI note 12: a hint only)
    last_call: float = 0.0      # LastCall: epoch of the member's last call's end (0: none)
    wrapuptime: int = 0         # Wrapuptime: the member's own wrap-up (0: the queue's applies)
    last_pause: float = 0.0     # LastPause: epoch the current or last pause began (0: none)
    server: str = ""            # the Asterisk server it is a member on (Message.server)

    @property
    def state(self) -> str:
        """The device state by name (unknown, not_in_use, in_use, busy, ringing, ...)."""
        return DEVICE_STATES.get(self.status, "unknown")

    def wrapup_until(self, queue_wrapup: float) -> float:
        """Until when the member is in wrap-up after its last call (app_queue does not ring it
        then): LastCall plus the member's Wrapuptime, else the queue's (queues.conf
        `wrapuptime`, known to the engine as agents.wrapup_seconds); 0 when no call yet."""
        if not self.last_call:
            return 0.0
        return self.last_call + (self.wrapuptime or queue_wrapup)

    @property
    def logged_in(self) -> bool:
        return self.status not in NOT_LOGGED_IN

    @property
    def staffing(self) -> bool:
        """Logged in and not paused (may be on a call)."""
        return self.logged_in and not self.paused

    @property
    def available(self) -> bool:
        """Would be rung now (app_queue is_member_available, ringinuse off)."""
        return self.status in FREE and not self.paused


@dataclass(frozen=True)
class Caller:
    queue: str
    uniqueid: str
    channel: str
    position: int
    entered: float          # start of the current Queue() call (Asterisk's clock when known)
    priority: int | None = None   # the queue priority, known from QueueStatus only
    server: str = ""              # the Asterisk server the caller waits on (Message.server)


def member_from(message: Any) -> Member | None:
    """A Member from a member event or a QueueStatus QueueMember item (None if unusable)."""
    queue = message.get("Queue") or ""
    interface = message.get("Interface") or message.get("Location") or ""
    if not queue or not interface:
        return None
    return Member(queue, interface, message.get("MemberName") or message.get("Name") or "",
                  message.get("Status") or "0", message.get("Paused") == "1",
                  message.get("PausedReason") or "", message.get("InCall") == "1",
                  float(_int(message.get("LastCall"))), _int(message.get("Wrapuptime")),
                  float(_int(message.get("LastPause"))), getattr(message, "server", ""))


Listener = Callable[[str, Any], None]


class QueuePicture:
    """Members and waiting callers of every queue; `listen` is told each change:
    ("member", Member), ("member_removed", Member), ("caller_joined", Caller),
    ("caller_left", Caller), ("resync", None)."""

    def __init__(self, clock: Any):
        self.clock = clock
        self.members: dict[tuple[str, str], Member] = {}
        self.callers: dict[str, Caller] = {}
        self.synced = False
        self._listeners: list[Listener] = []

    # --- what readers ask -----------------------------------------------------------------
    def queue_members(self, queue: str) -> list[Member]:
        return [m for (q, _), m in self.members.items() if q == queue]

    def staffing(self, queue: str) -> int | None:
        """Members staffing `queue`; None before the first QueueStatus (nothing known)."""
        if not self.synced:
            return None
        return sum(1 for m in self.queue_members(queue) if m.staffing)

    def available(self, queue: str) -> int | None:
        if not self.synced:
            return None
        return sum(1 for m in self.queue_members(queue) if m.available)

    def waiting(self, queue: str) -> list[Caller]:
        """Callers in `queue` now, in Asterisk's order."""
        return sorted((c for c in self.callers.values() if c.queue == queue),
                      key=lambda c: (c.position, c.entered))

    def listen(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # --- what the feed tells it -----------------------------------------------------------
    def apply(self, message: Any) -> None:
        """One AMI event; events this picture does not model are ignored."""
        event = message.get("Event") or ""
        if event in MEMBER_EVENTS:
            self._member_event(event, message)
        elif event == "QueueCallerJoin":
            self._join(message)
        elif event == "QueueCallerLeave":
            self._leave(message)

    def replace(self, messages: Iterable[Any], server: str | None = None) -> None:
        """A QueueStatus answer: the whole truth replaces what events built up (of `server`
        only, when given: the other servers' members and callers stay)."""
        now = self.clock.seconds()
        members: dict[tuple[str, str], Member] = {}
        callers: dict[str, Caller] = {}
        if server is not None:
            members = {k: m for k, m in self.members.items() if m.server != server}
            callers = {k: c for k, c in self.callers.items() if c.server != server}
        for message in messages:
            event = message.get("Event")
            if event == "QueueMember":
                member = member_from(message)
                if member is not None:
                    members[(member.queue, member.interface)] = member
            elif event == "QueueEntry":
                caller = _entry(message, now)
                if caller is not None:
                    callers[caller.uniqueid] = caller
        self.members, self.callers, self.synced = members, callers, True
        self._tell("resync", None)

    def _member_event(self, event: str, message: Any) -> None:
        member = member_from(message)
        if member is None:
            return
        key = (member.queue, member.interface)
        if event == "QueueMemberRemoved":
            gone = self.members.pop(key, None)
            if gone is not None:
                self._tell("member_removed", gone)
            return
        if self.members.get(key) != member:
            self.members[key] = member
            self._tell("member", member)

    def _join(self, message: Any) -> None:
        uniqueid, queue = message.get("Uniqueid") or "", message.get("Queue") or ""
        if not uniqueid or not queue:
            return
        position = _int(message.get("Position"))
        server = getattr(message, "server", "")
        # Callers behind the joining position move down one (join_queue() inserts); positions
        # count on each server (a queue of the same name on two servers is two queues there).
        for other in [c for c in self.callers.values() if c.queue == queue and c.server == server
                      and c.uniqueid != uniqueid and c.position >= position]:
            self.callers[other.uniqueid] = replace(other, position=other.position + 1)
        caller = Caller(queue, uniqueid, message.get("Channel") or "", position,
                        _timestamp(message, self.clock.seconds()),
                        server=server)
        self.callers[uniqueid] = caller
        self._tell("caller_joined", caller)

    def _leave(self, message: Any) -> None:
        caller = self.callers.pop(message.get("Uniqueid") or "", None)
        if caller is None:
            return
        for other in [c for c in self.callers.values() if c.queue == caller.queue
                      and c.server == caller.server and c.position > caller.position]:
            self.callers[other.uniqueid] = replace(other, position=other.position - 1)
        self._tell("caller_left", caller)

    def _tell(self, kind: str, what: Any) -> None:
        for listener in list(self._listeners):
            listener(kind, what)


def _entry(message: Any, now: float) -> Caller | None:
    uniqueid, queue = message.get("Uniqueid") or "", message.get("Queue") or ""
    if not uniqueid or not queue:
        return None
    wait = _int(message.get("Wait"))
    return Caller(queue, uniqueid, message.get("Channel") or "", _int(message.get("Position")),
                  now - wait, _int(message.get("Priority")), getattr(message, "server", ""))


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _timestamp(message: Any, default: float) -> float:
    try:
        value = float(message.get("Timestamp") or "")
    except ValueError:
        return default
    return value if math.isfinite(value) else default
