"""AMI queue events -> queue metrics and the waiting snapshot.

Asterisk facts this relies on (captures in ../shared/asterisk/, copied to tests/fixtures/ami/):
- QueueCallerJoin, AgentConnect, QueueCallerAbandon, QueueCallerLeave and AgentComplete carry the
  caller channel's `Uniqueid` and `Queue`; every event carries `Timestamp` (epoch seconds with
  microseconds) only when manager.conf has `timestampevents = yes`.
- Answered call (a_answered): Join, then QueueCallerLeave *before* AgentConnect (same instant);
  AgentConnect `HoldTime` is whole seconds (2) while the Timestamps give 2.409 s.
- Abandoned call (b_abandoned): QueueCallerAbandon (`HoldTime: 10`, a duration in whole seconds,
  not an epoch time) then QueueCallerLeave.
- QueueWithdrawCaller (ami6): QueueCallerAbandon, VarSet QUEUE_WITHDRAW_INFO (only when the
  action had a WithdrawInfo), QueueCallerLeave, VarSet QUEUESTATUS=WITHDRAW.
- Exit with a key (ami7): no Abandon, no QUEUESTATUS; the Leave event's `Context` is already the
  queue's exit context, while the Join's was the dialplan context of the Queue() call.
- Timeout / leaveempty / leaveunavail: Leave, then VarSet QUEUESTATUS (app_queue.c
  `queue_exec`: `leave_queue()` then `set_queue_result()`). VarSet needs the AMI `dialplan`
  read class; without it these exits are counted as `other` after `leave_grace` seconds.

Answer and abandon waits are `event Timestamp - join Timestamp` when both are known (sub-second,
one clock: Asterisk's), else the event's `HoldTime`. No event can raise out of `handle`: a bad
one is counted in `ccengine_stats_ignored_events_total{reason}`.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ccengine.stats.metrics import Clock, QueueMetrics, QueueSettings
from ccengine.stats.waiting import WaitingCallers

QUEUESTATUS_EXITS = {"TIMEOUT": "timeout", "LEAVEEMPTY": "leaveempty",
                     "LEAVEUNAVAIL": "leaveunavail", "WITHDRAW": "withdraw"}


class BadEvent(Exception):
    """An event the consumer cannot use; `reason` is one of metrics.IGNORED_REASONS."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Join:
    """What is remembered about one caller between QueueCallerJoin and the end of the call."""
    queue: str
    timestamp: float | None
    context: str | None
    abandoned: bool = False
    withdrawn: bool = False


class QueueEventConsumer:
    """Feeds QueueMetrics and WaitingCallers from AMI events (objects with `.get(header)`)."""

    EVENTS = ("QueueCallerJoin", "AgentConnect", "QueueCallerAbandon", "QueueCallerLeave",
              "AgentComplete", "VarSet")

    def __init__(self, metrics: QueueMetrics, waiting: WaitingCallers,
                 queues: Mapping[str, QueueSettings], clock: Clock,
                 max_tracked: int = 10000, leave_grace: float = 10.0):
        self.metrics = metrics
        self.waiting = waiting
        self.queues = queues
        self.clock = clock
        self.max_tracked = max_tracked
        self.leave_grace = leave_grace
        self._joins: OrderedDict[str, _Join] = OrderedDict()  # by Uniqueid, oldest first
        self._left: OrderedDict[str, float] = OrderedDict()   # left, exit not yet known
        self._handlers = {
            "queuecallerjoin": self._on_join, "agentconnect": self._on_connect,
            "queuecallerabandon": self._on_abandon, "queuecallerleave": self._on_leave,
            "agentcomplete": self._on_complete, "varset": self._on_varset,
        }

    @property
    def tracked(self) -> int:
        return len(self._joins)

    def attach(self, client: Any) -> None:
        """Subscribe to the events this consumer reads on an ami.client.AmiClient."""
        for name in self.EVENTS:
            client.subscribe(name, self.handle)

    def handle(self, msg: Any) -> None:
        handler = self._handlers.get((msg.get("Event") or "").lower())
        if handler is None:
            return
        self.expire()
        try:
            handler(msg)
        except BadEvent as bad:
            self.metrics.ignore(bad.reason)

    def expire(self) -> None:
        """Count as `other` the callers who left without a recognisable exit `leave_grace` ago."""
        deadline = self.clock.seconds() - self.leave_grace
        while self._left:
            uniqueid, left_at = next(iter(self._left.items()))
            if left_at > deadline:
                break
            self._finish(uniqueid, "other")

    # --- resync ---------------------------------------------------------------------------

    def request_resync(self, client: Any):
        """Send QueueStatus and rebuild the waiting snapshot from its QueueEntry events."""
        return client.send_list_action("QueueStatus").addCallback(self.resync)

    def resync(self, messages: Iterable[Any]) -> None:
        """Replace the waiting snapshot with the QueueEntry events of a QueueStatus answer.

        QueueEntry has `Queue`, `Uniqueid` and `Wait` (whole seconds waited so far) but no
        Timestamp (d_queuestatus_waiting_caller); join records created here therefore answer
        with the events' HoldTime. Tracked callers that are gone left while the engine was not
        listening: their exit is `other`.
        """
        now = self.clock.seconds()
        entries = []
        for msg in messages:
            if (msg.get("Event") or "").lower() != "queueentry":
                continue
            try:
                queue, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
                wait = _seconds(_required(msg, "Wait"))
            except BadEvent as bad:
                self.metrics.ignore(bad.reason)
                continue
            entries.append((uniqueid, queue, now - wait))
        present = {uniqueid for uniqueid, _, _ in entries}
        for uniqueid in [u for u in self._joins if u not in present and u not in self._left]:
            self._finish(uniqueid, "other")
        for uniqueid, queue, _ in entries:
            if uniqueid not in self._joins:
                self._track(uniqueid, _Join(queue, None, None))
        self.waiting.replace(entries)

    # --- events ---------------------------------------------------------------------------

    def _on_join(self, msg: Any) -> None:
        queue, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
        timestamp = _timestamp(msg)
        self.metrics.offered.labels(queue=queue).inc()
        if uniqueid in self._left:  # the same channel joins again after an unknown exit
            self._finish(uniqueid, "other")
        self._track(uniqueid, _Join(queue, timestamp, msg.get("Context")))
        if self.waiting.add(uniqueid, queue, self.clock.seconds()):
            self.metrics.ignore("evicted")

    def _on_connect(self, msg: Any) -> None:
        queue, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
        join = self._joins.get(uniqueid)
        wait = self._wait(msg, join)
        self.waiting.remove(uniqueid)
        self.metrics.answered.labels(queue=queue).inc()
        self.metrics.answer_time.labels(queue=queue).observe(wait)
        if wait <= self.queues[queue].service_level_seconds:
            self.metrics.answered_within_sl.labels(queue=queue).inc()
        self.metrics.exit(queue, "answered")
        self._forget(uniqueid)
        if join is None:
            self.metrics.ignore("join_not_seen")

    def _on_abandon(self, msg: Any) -> None:
        queue, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
        join = self._joins.get(uniqueid)
        wait = self._wait(msg, join)
        self.metrics.abandoned.labels(queue=queue).inc()
        self.metrics.abandon_wait.labels(queue=queue).observe(wait)
        if wait < self.queues[queue].short_abandon_seconds:
            self.metrics.short_abandoned.labels(queue=queue).inc()
        if join is None:
            # Keep a record so the Leave that follows can still tell abandon from withdraw.
            self.metrics.ignore("join_not_seen")
            join = _Join(queue, None, None)
            self._track(uniqueid, join)
        join.abandoned = True

    def _on_leave(self, msg: Any) -> None:
        _, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
        self.waiting.remove(uniqueid)
        join = self._joins.get(uniqueid)
        if join is None:
            raise BadEvent("join_not_seen")
        context = msg.get("Context")
        if join.abandoned:
            self._finish(uniqueid, "withdraw" if join.withdrawn else "abandon")
        elif join.context is not None and context is not None and context != join.context:
            self._finish(uniqueid, "exitkey")
        else:  # answered (AgentConnect follows), or a QUEUESTATUS VarSet may follow
            self._left.pop(uniqueid, None)
            self._left[uniqueid] = self.clock.seconds()

    def _on_complete(self, msg: Any) -> None:
        queue, uniqueid = self._queue(msg), _required(msg, "Uniqueid")
        talk_time = _seconds(_required(msg, "TalkTime"))
        self.metrics.talk_time.labels(queue=queue).observe(talk_time)
        self._forget(uniqueid)

    def _on_varset(self, msg: Any) -> None:
        # VarSet is the busiest event of all: look at two variables of tracked callers only.
        variable = msg.get("Variable")
        if variable not in ("QUEUESTATUS", "QUEUE_WITHDRAW_INFO"):
            return
        uniqueid = msg.get("Uniqueid")
        join = self._joins.get(uniqueid) if uniqueid else None
        if join is None:
            return
        if variable == "QUEUE_WITHDRAW_INFO":
            join.withdrawn = True
        elif uniqueid in self._left and msg.get("Value") in QUEUESTATUS_EXITS:
            self._finish(uniqueid, QUEUESTATUS_EXITS[msg.get("Value")])

    # --- helpers --------------------------------------------------------------------------

    def _queue(self, msg: Any) -> str:
        queue = _required(msg, "Queue")
        if queue not in self.queues:
            raise BadEvent("unknown_queue")
        return queue

    def _wait(self, msg: Any, join: _Join | None) -> float:
        """Seconds from join to this event: Timestamps when both are known, else HoldTime."""
        if join is not None and join.timestamp is not None:
            now = _timestamp(msg)
            if now is not None and now >= join.timestamp:
                return now - join.timestamp
        return _seconds(_required(msg, "HoldTime"))

    def _track(self, uniqueid: str, join: _Join) -> None:
        self._joins.pop(uniqueid, None)
        self._joins[uniqueid] = join
        while len(self._joins) > self.max_tracked:
            oldest = next(iter(self._joins))
            if oldest in self._left:
                self._finish(oldest, "other")
            else:
                self._forget(oldest)
                self.metrics.ignore("evicted")

    def _finish(self, uniqueid: str, reason: str) -> None:
        join = self._joins.get(uniqueid)
        if join is not None:
            self.metrics.exit(join.queue, reason)
        self._forget(uniqueid)

    def _forget(self, uniqueid: str) -> None:
        self._joins.pop(uniqueid, None)
        self._left.pop(uniqueid, None)


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
