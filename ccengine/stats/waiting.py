"""Live snapshot of the callers waiting in each queue, read by the scrape-time gauges.

The snapshot is keyed by the caller channel's Uniqueid and holds the moment the caller joined,
in the *engine's* clock (`IReactorTime.seconds()` when the QueueCallerJoin event arrived, or
`now - Wait` from a QueueStatus resync). Asterisk's event Timestamp is deliberately not used
here: the gauges subtract it from the engine's clock, and the two hosts' clocks may differ
(and Timestamp is only sent when manager.conf has `timestampevents = yes`).

Gauges are recomputed from this snapshot at every scrape, never kept with inc/dec, so a
lost event cannot leave a gauge wrong for ever: the next QueueStatus resync repairs it.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from collections.abc import Callable, Iterable


@dataclass(frozen=True)
class WaitingCaller:
    queue: str
    joined_at: float
    server: str = ""          # the Asterisk server (several: the gauges count owned ones)


@dataclass(frozen=True)
class QueueWaiting:
    """What the gauges show for one queue at one instant."""
    calls: int
    longest_wait: float


class WaitingCallers:
    """Callers in queue now, bounded: past `max_callers` the oldest entry is dropped.

    The bound only matters if Leave events are lost on a large scale (a QueueStatus resync
    then rebuilds the truth); `add` reports an eviction so the caller can count it.
    """

    def __init__(self, max_callers: int = 10000):
        if max_callers <= 0:
            raise ValueError("max_callers must be positive")
        self.max_callers = max_callers
        self._callers: OrderedDict[str, WaitingCaller] = OrderedDict()

    def __len__(self) -> int:
        return len(self._callers)

    def __contains__(self, uniqueid: object) -> bool:
        return uniqueid in self._callers

    def add(self, uniqueid: str, queue: str, joined_at: float, server: str = "") -> bool:
        """Record a waiting caller; returns True when an older entry had to be evicted."""
        self._callers.pop(uniqueid, None)
        self._callers[uniqueid] = WaitingCaller(queue, joined_at, server)
        if len(self._callers) > self.max_callers:
            self._callers.popitem(last=False)
            return True
        return False

    def remove(self, uniqueid: str) -> WaitingCaller | None:
        return self._callers.pop(uniqueid, None)

    def replace(self, entries: Iterable[tuple]) -> None:
        """Replace the whole snapshot with (uniqueid, queue, joined_at[, server]) from a
        resync."""
        fresh = sorted(entries, key=lambda entry: entry[2])[-self.max_callers:]
        self._callers = OrderedDict(
            (entry[0], WaitingCaller(*entry[1:])) for entry in fresh)

    def summary(self, queues: Iterable[str], now: float,
                counts: Callable[[str], bool] | None = None) -> dict[str, QueueWaiting]:
        """Waiting count and longest wait per queue (0 for a queue nobody waits in); only
        the callers of servers `counts` accepts, when given."""
        out = {name: QueueWaiting(0, 0.0) for name in queues}
        for caller in self._callers.values():
            current = out.get(caller.queue)
            if current is None or counts is not None and not counts(caller.server):
                continue
            wait = max(0.0, now - caller.joined_at)
            out[caller.queue] = QueueWaiting(current.calls + 1, max(current.longest_wait, wait))
        return out
