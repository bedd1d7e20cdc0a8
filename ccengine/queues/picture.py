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
from collections.abc import Callable, Iterable, Iterator, Mapping

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
    ("caller_left", Caller), ("resync", None).

    Callers are kept per line (queue and server), each with its position less the line's
    offset. Asterisk's positions in a line are 1..n, a caller joins at the back
    (Position n+1) and the one answered leaves from the front (Position 1): while a line's
    positions are exactly 1..n, those two take constant time (a join moves nobody, a leave
    from the front lowers the offset). Anything else (a join in the middle, a leave from
    the middle, positions with gaps after missed events) moves the callers one by one,
    as Asterisk's join_queue() and leave_queue() do; `callers` reads the positions."""

    def __init__(self, clock: Any):
        self.clock = clock
        self.members: dict[tuple[str, str], Member] = {}
        self.synced = False
        self._listeners: list[Listener] = []
        self._lines: dict[tuple[str, str], _Line] = {}
        self._line_of: dict[str, tuple[str, str]] = {}    # uniqueid -> its line, join order

    @property
    def callers(self) -> Mapping[str, Caller]:
        """Every waiting caller by uniqueid, with its current position."""
        return _Callers(self._lines, self._line_of)

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
        self._lines, self._line_of = {}, {}
        for uniqueid, caller in callers.items():
            key = (caller.queue, caller.server)
            self._line_of[uniqueid] = key
            self._lines.setdefault(key, _Line()).callers[uniqueid] = caller
        for line in self._lines.values():
            line.dense = line.is_dense()
        self.members, self.synced = members, True
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
        key = (queue, server)
        earlier = self._line_of.get(uniqueid)
        if earlier is not None:
            # The same call joining again without a leave seen: its old place is dropped
            # without moving anybody (as the one-dict picture overwrote it).
            old_line = self._lines[earlier]
            del old_line.callers[uniqueid]
            old_line.dense = False
            if not old_line.callers:
                del self._lines[earlier]
        line = self._lines.setdefault(key, _Line())
        # Callers behind the joining position move down one (join_queue() inserts); positions
        # count on each server (a queue of the same name on two servers is two queues there).
        if not (line.dense and position == len(line.callers) + 1):
            line.move(lambda p: p >= position, 1)
            line.dense = line.dense and 1 <= position <= len(line.callers) + 1
        caller = Caller(queue, uniqueid, message.get("Channel") or "", position,
                        _timestamp(message, self.clock.seconds()),
                        server=server)
        line.callers[uniqueid] = replace(caller, position=position - line.offset) \
            if line.offset else caller
        self._line_of[uniqueid] = key
        self._tell("caller_joined", caller)

    def _leave(self, message: Any) -> None:
        uniqueid = message.get("Uniqueid") or ""
        key = self._line_of.pop(uniqueid, None)
        if key is None:
            return
        line = self._lines[key]
        caller = line.current(line.callers.pop(uniqueid))
        if line.dense and caller.position == 1:
            line.offset -= 1                    # everybody else moves up one
        else:
            line.move(lambda p: p > caller.position, -1)
        if not line.callers:
            del self._lines[key]
        self._tell("caller_left", caller)

    def _tell(self, kind: str, what: Any) -> None:
        for listener in list(self._listeners):
            listener(kind, what)


class _Line:
    """The callers of one queue on one server; a caller's position is its stored one plus
    `offset`. `dense`: the positions are exactly 1..n."""

    def __init__(self) -> None:
        self.callers: dict[str, Caller] = {}
        self.offset = 0
        self.dense = True

    def current(self, stored: Caller) -> Caller:
        return replace(stored, position=stored.position + self.offset) if self.offset else stored

    def is_dense(self) -> bool:
        positions = sorted(c.position + self.offset for c in self.callers.values())
        return positions == list(range(1, len(positions) + 1))

    def move(self, which: Callable[[int], bool], by: int) -> None:
        """Move the callers whose current position satisfies `which` by `by` places."""
        offset = self.offset
        for uniqueid, stored in self.callers.items():
            if which(stored.position + offset):
                self.callers[uniqueid] = replace(stored, position=stored.position + by)


class _Callers(Mapping):
    """Read-only view of every waiting caller, in the order they joined, positions current."""

    def __init__(self, lines: dict[tuple[str, str], _Line],
                 line_of: dict[str, tuple[str, str]]) -> None:
        self._lines = lines
        self._line_of = line_of

    def __getitem__(self, uniqueid: str) -> Caller:
        line = self._lines[self._line_of[uniqueid]]
        return line.current(line.callers[uniqueid])

    def __iter__(self) -> Iterator[str]:
        return iter(self._line_of)

    def __len__(self) -> int:
        return len(self._line_of)


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
