"""What the waiting-callers feature learns from AMI (through the queue feed, ccengine/queues/):
answers, talk times, hang-ups. Staffing comes from the queue picture itself.

- AgentConnect (caller `Uniqueid`, `Queue`): the caller leaves the line and its first
  estimate is compared with the actual answer time (estimate-error histogram).
- AgentComplete (`TalkTime` in seconds, AMI note 11): one sample of the handling-time window.
- Hangup (`Uniqueid`): a caller the engine announced leaves the line.
Handlers never raise: a malformed event is logged and skipped.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ccengine.store.base import StoreUnavailable
from ccengine.waiting.line import WaitingLine
from ccengine.waiting.metrics import WaitingMetrics

log = Logger()

class EstimateLedger:
    """The first estimate announced to each waiting caller, until it is answered or gone."""

    def __init__(self, metrics: WaitingMetrics, max_entries: int = 20000):
        self.metrics = metrics
        self.max_entries = max_entries
        self._predicted: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def announced(self, uniqueid: str, queue: str, now: float, estimate: float | None) -> None:
        if estimate is None or uniqueid in self._predicted:
            return
        self._predicted[uniqueid] = (queue, now + estimate)
        while len(self._predicted) > self.max_entries:
            self._predicted.popitem(last=False)

    def answered(self, uniqueid: str, queue: str, now: float) -> float | None:
        """Observe estimated minus actual (seconds) for this caller; returns it, or None."""
        entry = self._predicted.pop(uniqueid, None)
        if entry is None or entry[0] != queue:
            return None
        error = entry[1] - now
        self.metrics.estimate_error.labels(queue).observe(error)
        return error

    def forget(self, uniqueid: str) -> None:
        self._predicted.pop(uniqueid, None)


class WaitingEvents:
    """The feature's consumer of the queue feed; `callers` maps an announced uniqueid to its
    queue."""

    def __init__(self, line: WaitingLine, ledger: EstimateLedger, clock: Any, queues: list[str]):
        self.line = line
        self.ledger = ledger
        self.clock = clock
        self.queues = set(queues)
        self.callers: OrderedDict[str, str] = OrderedDict()

    def attach(self, feed: Any) -> None:
        feed.on(("AgentConnect",), self.agent_connect)
        feed.on(("AgentComplete",), self.agent_complete)
        feed.on(("Hangup",), self.hangup)

    def remember(self, uniqueid: str, queue: str) -> None:
        self.callers[uniqueid] = queue
        self.callers.move_to_end(uniqueid)
        while len(self.callers) > 20000:
            self.callers.popitem(last=False)

    # --- handlers -------------------------------------------------------------------------
    def agent_connect(self, message: Any) -> None:
        uniqueid, queue = message.get("Uniqueid"), message.get("Queue")
        if not uniqueid or queue not in self.queues:
            return
        self.ledger.answered(uniqueid, queue, self.clock.seconds())
        self.callers.pop(uniqueid, None)
        self._leave(queue, uniqueid)

    def agent_complete(self, message: Any) -> None:
        queue = message.get("Queue")
        try:
            talk = float(message.get("TalkTime", ""))
        except ValueError:
            log.warn("AgentComplete without a usable TalkTime ignored")
            return
        if queue in self.queues and talk > 0:
            _logged(self.line.record_talk_time(queue, talk), "talk time not recorded")

    def hangup(self, message: Any) -> None:
        uniqueid = message.get("Uniqueid") or ""
        queue = self.callers.pop(uniqueid, None)
        if queue is not None:
            self.ledger.forget(uniqueid)
            self._leave(queue, uniqueid)

    def _leave(self, queue: str, uniqueid: str) -> None:
        try:
            d = self.line.leave(queue, uniqueid)
        except ValueError:   # keys.BadKeyPart: not a uniqueid we could have stored
            return
        _logged(d, "line not updated")


def _logged(d: Deferred, what: str) -> None:
    def failed(failure):
        # The sweep repairs the line later; a Redis failure here costs no caller anything.
        failure.trap(StoreUnavailable)
        log.warn("{what}: {e}", what=what, e=failure.getErrorMessage())
    d.addErrback(failed)
