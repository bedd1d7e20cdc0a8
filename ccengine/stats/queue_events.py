"""AMI queue events -> queue metrics and the waiting snapshot.

Asterisk facts this relies on (captures in ../shared/asterisk/, copied to tests/fixtures/ami/):
- QueueCallerJoin, AgentConnect, QueueCallerAbandon, QueueCallerLeave and AgentComplete carry the
  caller channel's `Uniqueid` and `Queue`; every event carries `Timestamp` (epoch seconds with
  microseconds) only when manager.conf has `timestampevents = yes`.
- Answered call (a_answered): Join, then QueueCallerLeave *before* AgentConnect (same instant);
  AgentConnect `HoldTime` is whole seconds (2) while the Timestamps give 2.409 s.
- Abandoned call (b_abandoned): QueueCallerAbandon (`HoldTime: 10`, a duration in whole seconds,
  not an epoch time), QueueCallerLeave, then the caller channel's Hangup.
- QueueWithdrawCaller (ami6): QueueCallerAbandon, VarSet QUEUE_WITHDRAW_INFO (only when the
  action had a WithdrawInfo), QueueCallerLeave, VarSet QUEUESTATUS=WITHDRAW.
- Exit with a key (ami7): no Abandon, no QUEUESTATUS; the Leave event's `Context` is already the
  queue's exit context, while the Join's was the dialplan context of the Queue() call.
- Timeout / leaveempty / leaveunavail: QueueCallerAbandon (app_queue.c `queue_exec` calls
  `record_abandoned()` on each of these exits; lab24_callback_after_30s shows it for a Queue()
  timeout), Leave, then VarSet QUEUESTATUS (`leave_queue()` then `set_queue_result()`). VarSet
  needs the AMI `dialplan` read class (the shipped manager.conf grants it, with eventfilter
  lines for these two variables; docs/operations.md): without it a timeout looks like an
  abandon until the caller re-joins.
- Every Queue() call is a new queue entry: its HoldTime counts from that call's own join.

The hold loop (dialplans/extensions_ccengine.conf, [ccengine-wait]) leaves and re-enters the same
queue every announcement slice, so one caller makes many Join/Leave pairs with one Uniqueid. A
caller is therefore tracked per Uniqueid: the first join in a queue is the offer and the start
of the wait; a later join of the same Uniqueid in the same queue continues it. A Leave that is
not an answer puts the caller *between slices* with a provisional exit reason; the exit is
counted only when no re-join follows: at the channel's Hangup, at a join of another queue, or
`leave_grace` seconds later (longer than an announcement; `expire()` runs on every event and on
a timer, stats/feature.py). A withdraw to another queue (complaint -> supervisor) is an exit
`withdraw` of the first queue and a new offer in the second, whose wait starts at that join.
Answer and abandon waits are `event Timestamp - first join Timestamp` when both are known, else
the event's HoldTime plus the engine-clock time between the first join and this slice's join.
A caller who hangs up between slices (hearing an announcement after a timeout) without a
stored callback abandoned: the wait runs from the first join to the Hangup. A stored callback
(`callback_taken`, from the waiting feature) ends the stay as `callback`.
No event can raise out of `handle`: a bad one is counted in
`ccengine_stats_ignored_events_total{reason}`.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Mapping

from ccengine.queues.feed import VARSET_VARIABLES
from ccengine.stats.metrics import Clock, QueueMetrics, QueueSettings
from ccengine.stats.waiting import WaitingCallers

# QUEUESTATUS after a Leave. LEAVEEMPTY/LEAVEUNAVAIL end the caller's stay at once: the dialplan
# never re-enters the same queue after them (it falls back to inbound or hangs up).
QUEUESTATUS_EXITS = {"TIMEOUT": "timeout", "LEAVEEMPTY": "leaveempty",
                     "LEAVEUNAVAIL": "leaveunavail", "WITHDRAW": "withdraw"}
FINAL_QUEUESTATUS = frozenset({"LEAVEEMPTY", "LEAVEUNAVAIL"})
# Exits between slices after which a Hangup means the caller gave up waiting.
UNSERVED_BETWEEN = frozenset({"timeout", "other", "abandon"})


class BadEvent(Exception):
    """An event the consumer cannot use; `reason` is one of metrics.IGNORED_REASONS."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Caller:
    """One caller's stay in one queue, from the first join to the exit (all slices)."""
    queue: str
    first_ts: float | None        # Asterisk Timestamp of the first join (None: unknown)
    first_seen: float             # engine clock at the first join (waiting gauges)
    context: str | None = None    # Context of the current slice's join
    slice_offset: float = 0.0     # engine seconds from the first join to this slice's join
    abandon_wait: float | None = None  # set by QueueCallerAbandon (also sent for a withdraw)
    withdrawn: bool = False       # VarSet QUEUE_WITHDRAW_INFO seen for this slice
    between: bool = False         # left the queue, a re-join may follow
    exit_reason: str = "other"    # the exit to count if no re-join follows
    server: str = ""              # the Asterisk server of the caller (Message.server)


class QueueEventConsumer:
    """Feeds QueueMetrics and WaitingCallers from AMI events (objects with `.get(header)`)."""

    EVENTS = ("QueueCallerJoin", "AgentConnect", "QueueCallerAbandon", "QueueCallerLeave",
              "AgentComplete", "VarSet", "Hangup")
    # The VarSet variables read: the feed subscribes to those only (the rest are dropped
    # unparsed); this consumer also checks, for a VarSet that reaches it otherwise.
    VARIABLES = VARSET_VARIABLES

    def __init__(self, metrics: QueueMetrics, waiting: WaitingCallers,
                 queues: Mapping[str, QueueSettings], clock: Clock,
                 max_tracked: int = 10000, leave_grace: float = 60.0):
        self.metrics = metrics
        self.waiting = waiting
        self.queues = queues
        self.clock = clock
        self.max_tracked = max_tracked
        self.leave_grace = leave_grace
        self._callers: OrderedDict[str, _Caller] = OrderedDict()  # by Uniqueid, least recent first
        self._between: OrderedDict[str, float] = OrderedDict()    # Uniqueid -> left at, oldest first
        # Told each counted outcome as the metrics count it (the console's floor figures,
        # console/window.py): offered(queue, now), answered(queue, wait, now),
        # abandoned(queue, wait, now), completed(queue, member, talk, now).
        self.observers: list[Any] = []
        self._handlers = {
            "queuecallerjoin": self._on_join, "agentconnect": self._on_connect,
            "queuecallerabandon": self._on_abandon, "queuecallerleave": self._on_leave,
            "agentcomplete": self._on_complete, "varset": self._on_varset,
            "hangup": self._on_hangup,
        }

    @property
    def tracked(self) -> int:
        return len(self._callers)

    def handle(self, msg: Any) -> None:
        handler = self._handlers.get((msg.get("Event") or "").lower())
        if handler is None:
            return
        if self._between:
            self.expire()
        try:
            handler(msg)
        except BadEvent as bad:
            self.metrics.ignore(bad.reason)

    def expire(self) -> None:
        """Count the exits of callers between slices who did not come back within `leave_grace`."""
        deadline = self.clock.seconds() - self.leave_grace
        while self._between:
            uniqueid, left_at = next(iter(self._between.items()))
            if left_at > deadline:
                break
            self._close(uniqueid)

    # --- resync ---------------------------------------------------------------------------

    def resync(self, messages: Iterable[Any], server: str | None = None) -> None:
        """Replace the waiting snapshot with the QueueEntry events of a QueueStatus answer
        (the queue feed's one QueueStatus per AMI login, ccengine/queues/feed.py).

        QueueEntry has `Queue`, `Uniqueid` and `Wait` (whole seconds in the current slice) but
        no Timestamp (d_queuestatus_waiting_caller); callers first seen here are not offered and
        answer with the events' HoldTime. A tracked caller keeps its first join. Callers between
        slices are not in any queue, so they are kept; tracked callers in a queue who are gone
        left while the engine was not listening and are closed.
        """
        now = self.clock.seconds()
        present: dict[str, tuple[str, float]] = {}
        for msg in messages:
            if (msg.get("Event") or "").lower() != "queueentry":
                continue
            try:
                queue, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
                wait = _seconds(_required(msg, "Wait"))
            except BadEvent as bad:
                self.metrics.ignore(bad.reason)
                continue
            present[uniqueid] = (queue, now - wait)
        for uniqueid in [u for u, c in self._callers.items() if u not in present and not c.between
                         and (server is None or c.server == server)]:
            self._close(uniqueid)
        for uniqueid, (queue, joined_at) in present.items():
            caller = self._callers.get(uniqueid)
            if caller is None or caller.queue != queue:
                if caller is not None:
                    self._close(uniqueid)
                self._track(uniqueid, _Caller(queue, None, joined_at, server=server or ""))
            elif caller.between:   # its re-join was missed
                self._between.pop(uniqueid, None)
                caller.between, caller.exit_reason = False, "other"
        self.waiting.replace([(u, c.queue, c.first_seen, c.server)
                              for u, c in self._callers.items()
                              if not (c.between and c.abandon_wait is not None)])

    # --- events ---------------------------------------------------------------------------

    def _on_join(self, msg: Any) -> None:
        queue, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
        timestamp = _timestamp(msg)
        now = self.clock.seconds()
        caller = self._callers.get(uniqueid)
        if caller is not None and caller.queue == queue:
            # The hold loop re-entering (or a withdraw back into the same queue): same wait.
            self._between.pop(uniqueid, None)
            caller.between, caller.exit_reason = False, "other"
            caller.abandon_wait, caller.withdrawn = None, False
            caller.context = msg.get("Context")
            caller.slice_offset = max(0.0, now - caller.first_seen)
            self._callers.move_to_end(uniqueid)
        else:
            if caller is not None:  # moved on to another queue: the first one's exit is final
                self._close(uniqueid, moved=True)
            self.metrics.offered.labels(queue=queue, server=self._server(msg)).inc()
            for observer in self.observers:
                observer.offered(queue, now)
            caller = _Caller(queue, timestamp, now, msg.get("Context"),
                             server=getattr(msg, "server", ""))
            self._track(uniqueid, caller)
        if self.waiting.add(uniqueid, queue, caller.first_seen, caller.server):
            self.metrics.ignore("evicted")

    def _on_connect(self, msg: Any) -> None:
        queue, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
        caller = self._callers.get(uniqueid)
        wait = self._wait(msg, caller)
        server = self._server(msg)
        self.metrics.answered.labels(queue=queue, server=server).inc()
        self.metrics.answer_time.labels(queue=queue, server=server).observe(wait)
        if wait <= self.queues[queue].service_level_seconds:
            self.metrics.answered_within_sl.labels(queue=queue, server=server).inc()
        self.metrics.exit(queue, "answered", server)
        for observer in self.observers:
            observer.answered(queue, wait, self.clock.seconds())
        self._forget(uniqueid)
        if caller is None:
            self.metrics.ignore("join_not_seen")

    def _on_abandon(self, msg: Any) -> None:
        # Counted when the exit is final: Asterisk also sends this event for a withdraw.
        queue, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
        caller = self._callers.get(uniqueid)
        wait = self._wait(msg, caller)
        if caller is None:
            self.metrics.ignore("join_not_seen")
            caller = _Caller(queue, None, self.clock.seconds(), server=getattr(msg, "server", ""))
            self._track(uniqueid, caller)
        caller.abandon_wait = wait

    def _on_leave(self, msg: Any) -> None:
        _, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
        caller = self._callers.get(uniqueid)
        if caller is None:
            self.waiting.remove(uniqueid)
            raise BadEvent("join_not_seen")
        context = msg.get("Context")
        if caller.withdrawn:
            caller.exit_reason = "withdraw"
        elif caller.abandon_wait is not None:
            # A hang-up, or a withdraw whose VarSet is not delivered: the Hangup that follows
            # confirms the abandon, a re-join shows a withdraw.
            caller.exit_reason = "abandon"
            self.waiting.remove(uniqueid)
        elif caller.context is not None and context is not None and context != caller.context:
            caller.exit_reason = "exitkey"
        else:  # answered (AgentConnect follows), timeout (QUEUESTATUS may follow), ...
            caller.exit_reason = "other"
        caller.between = True
        self._between.pop(uniqueid, None)
        self._between[uniqueid] = self.clock.seconds()

    def _on_complete(self, msg: Any) -> None:
        queue, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
        talk_time = _seconds(_required(msg, "TalkTime"))
        self.metrics.talk_time.labels(queue=queue, server=self._server(msg)).observe(talk_time)
        for observer in self.observers:
            observer.completed(queue, msg.get("MemberName") or "", talk_time, self.clock.seconds())
        self._forget(uniqueid)

    def _on_varset(self, msg: Any) -> None:
        # VarSet is the busiest event of all: look at two variables of tracked callers only.
        variable = msg.get("Variable")
        if variable not in self.VARIABLES:
            return
        uniqueid = msg.get("Uniqueid")
        caller = self._callers.get(uniqueid) if uniqueid else None
        if caller is None:
            return
        value = msg.get("Value")
        if variable == "QUEUE_WITHDRAW_INFO":
            caller.withdrawn = True
            if caller.between:
                caller.exit_reason = "withdraw"
        elif caller.between and value in QUEUESTATUS_EXITS:
            caller.exit_reason = QUEUESTATUS_EXITS[value]
            if value != "WITHDRAW":
                # app_queue reports these exits with a QueueCallerAbandon of their own
                # (record_abandoned(), lab24_callback_after_30s): not a caller who gave up.
                caller.abandon_wait = None
            if value in FINAL_QUEUESTATUS:
                self._close(uniqueid)

    def _on_hangup(self, msg: Any) -> None:
        # Every channel hangs up: only tracked callers matter, and the channel is gone for good.
        uniqueid = msg.get("Uniqueid")
        caller = self._callers.get(uniqueid) if uniqueid else None
        if caller is None:
            return
        if caller.between and caller.exit_reason in UNSERVED_BETWEEN and not caller.withdrawn:
            # Hung up while hearing an announcement (out of the queue between two slices, after
            # a timeout, which Asterisk itself reports as a QueueCallerAbandon): an abandoned
            # call, waited from the first entry to this Hangup. A caller who hung up IN the
            # queue has Abandon, Leave and Hangup within milliseconds: that Abandon's wait
            # stands.
            waited = self._hangup_wait(msg, caller)
            if caller.abandon_wait is None or waited - caller.abandon_wait >= 1.0:
                caller.abandon_wait = waited
        self._close(uniqueid)

    def callback_taken(self, uniqueid: str) -> None:
        """The waiting feature stored a callback for this caller (queue-announce): the hang-up
        that follows ends the stay as `callback`, not as an abandon."""
        caller = self._callers.get(uniqueid)
        if caller is not None:
            caller.exit_reason, caller.abandon_wait = "callback", None

    # --- helpers --------------------------------------------------------------------------

    def _queue(self, msg: Any) -> str:
        queue = _required(msg, "Queue")
        if queue not in self.queues:
            raise BadEvent("unknown_queue")
        return queue

    def _wait(self, msg: Any, caller: _Caller | None) -> float:
        """Seconds from the first join to this event (Timestamps, else HoldTime + earlier slices)."""
        if caller is not None and caller.first_ts is not None:
            now = _timestamp(msg)
            if now is not None and now >= caller.first_ts:
                return now - caller.first_ts
        hold = _seconds(_required(msg, "HoldTime"))
        return hold + (caller.slice_offset if caller is not None else 0.0)

    def _hangup_wait(self, msg: Any, caller: _Caller) -> float:
        """Seconds from the first join to a Hangup (Timestamps, else the engine clock)."""
        now = _timestamp(msg)
        if caller.first_ts is not None and now is not None and now >= caller.first_ts:
            return now - caller.first_ts
        return max(0.0, self.clock.seconds() - caller.first_seen)

    def _track(self, uniqueid: str, caller: _Caller) -> None:
        self._callers.pop(uniqueid, None)
        self._callers[uniqueid] = caller
        while len(self._callers) > self.max_tracked:
            oldest, record = next(iter(self._callers.items()))
            if record.between:
                self._close(oldest)
            else:
                self._forget(oldest)
                self.metrics.ignore("evicted")

    def _close(self, uniqueid: str, moved: bool = False) -> None:
        """Count the final exit of a caller (no re-join can follow any more) and forget them."""
        caller = self._callers.get(uniqueid)
        if caller is None:
            return
        reason = caller.exit_reason if caller.between else "other"
        server = self._server(caller)
        if moved and caller.abandon_wait is not None:
            reason = "withdraw"   # left with an Abandon and joined another queue: transferred
        elif reason not in ("withdraw", "callback") and caller.abandon_wait is not None \
                and not caller.withdrawn:
            reason = "abandon"
        if reason == "abandon" and caller.abandon_wait is not None:
            queue, wait = caller.queue, caller.abandon_wait
            self.metrics.abandoned.labels(queue=queue, server=server).inc()
            self.metrics.abandon_wait.labels(queue=queue, server=server).observe(wait)
            if wait < self.queues[queue].short_abandon_seconds:
                self.metrics.short_abandoned.labels(queue=queue, server=server).inc()
            for observer in self.observers:
                observer.abandoned(queue, wait, self.clock.seconds())
        self.metrics.exit(caller.queue, reason, server)
        self._forget(uniqueid)

    def _server(self, thing: Any) -> str:
        """The Asterisk server of an event or a tracked caller (the metrics' `server`)."""
        return getattr(thing, "server", "") or self.metrics.default_server

    def _forget(self, uniqueid: str) -> None:
        self._callers.pop(uniqueid, None)
        self._between.pop(uniqueid, None)
        self.waiting.remove(uniqueid)


def _required(msg: Any, header: str) -> str:
    value = msg.get(header)
    if value is None or value == "":
        raise BadEvent("missing_header")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadEvent("bad_value") from None
    if not math.isfinite(value) or value < 0:
        raise BadEvent("bad_value")
    return value


def _timestamp(msg: Any) -> float | None:
    """The event's Timestamp, None when absent (manager.conf `timestampevents = no`)."""
    text = msg.get("Timestamp")
    return None if text is None or text == "" else _seconds(text)
