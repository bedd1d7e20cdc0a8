"""The floor figures of the console: each queue's service level, speed of answer and abandonment
today and in the last 30 minutes, arrivals and handle time for the staffing advice, and the
calls each agent completed today.

They are the queue statistics' own outcomes (stats/queue_events.py tells its `observers` each
one as the Prometheus counters count it), so the console and Grafana agree by construction:
- service level = answered within the queue's T / (answered + abandoned - short abandons),
  as docs/metrics.md defines it;
- ASA = mean wait of answered calls; abandonment = abandoned / offered.

The last 30 minutes live in memory (a restart forgets them; they refill in 30 minutes). Today's
counters are also added in Redis (`cc:console:day:<YYYYMMDD>:<queue>`, HINCRBY, kept 3 days)
so a restart or a second engine page shows the whole day; "today" is the centre's local day.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from twisted.logger import Logger

from ccengine.store import keys
from ccengine.store.base import LuaScript

log = Logger()

# KEYS: the day's hash. ARGV: its TTL, then field, "f" (HINCRBYFLOAT) or "i" (HINCRBY), amount.
_HINCR = LuaScript("""
for i = 2, #ARGV, 3 do
  if ARGV[i + 1] == 'f' then
    redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 2])
  else
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 2])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
""")
WINDOW = 1800.0                 # the "last 30 minutes"
DAY_TTL = 3 * 86400
COUNTERS = ("offered", "answered", "within_sl", "abandoned", "short_abandoned", "wait_sum",
            "talk_sum", "talked")


@dataclass
class Counts:
    offered: int = 0
    answered: int = 0
    within_sl: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    wait_sum: float = 0.0
    talk_sum: float = 0.0
    talked: int = 0

    def add(self, name: str, value: float) -> None:
        setattr(self, name, getattr(self, name) + value)

    @property
    def service_level(self) -> float | None:
        counted = self.answered + self.abandoned - self.short_abandoned
        return self.within_sl / counted if counted > 0 else None

    @property
    def asa(self) -> float | None:
        return self.wait_sum / self.answered if self.answered else None

    @property
    def abandon_rate(self) -> float | None:
        return self.abandoned / self.offered if self.offered else None

    @property
    def handle_time(self) -> float | None:
        return self.talk_sum / self.talked if self.talked else None


@dataclass
class _Queue:
    recent: deque = field(default_factory=deque)    # (time, counter, value)
    today: Counts = field(default_factory=Counts)


class QueueWindows:
    def __init__(self, queues: Mapping[str, Any], timezone: str, clock: Any, redis: Any = None,
                 writes: Any = None):
        self.queues = queues              # name -> QueueConfig (service_level_seconds, ...)
        self.zone = ZoneInfo(timezone)
        self.clock = clock
        self.redis = redis                # RedisConnection, or None (tests of the arithmetic)
        self.writes = writes              # runtime.pending.PendingWrites, or None
        self._day = self.day(clock.seconds())
        self._queues = {name: _Queue() for name in queues}
        self.handled: dict[str, int] = {}
        self.listeners: list[Any] = []    # called with the queue name after each outcome

    def day(self, now: float) -> str:
        return datetime.fromtimestamp(now, self.zone).strftime("%Y%m%d")

    # --- the outcomes (stats/queue_events.py observers) -----------------------------------
    def offered(self, queue: str, now: float) -> None:
        self._count(queue, now, [("offered", 1)])

    def answered(self, queue: str, wait: float, now: float) -> None:
        within = wait <= self.queues[queue].service_level_seconds
        self._count(queue, now, [("answered", 1), ("wait_sum", wait), ("within_sl", int(within))])

    def abandoned(self, queue: str, wait: float, now: float) -> None:
        short = wait < self.queues[queue].short_abandon_seconds
        self._count(queue, now, [("abandoned", 1), ("short_abandoned", int(short))])

    def completed(self, queue: str, member: str, talk: float, now: float) -> None:
        self._count(queue, now, [("talked", 1), ("talk_sum", talk)])
        if member.isdigit() and len(member) <= 32:
            self.handled[member] = self.handled.get(member, 0) + 1
            self._hincr(keys.console_handled(self._day), [(member, 1)], sums=False)

    # --- what the console reads -----------------------------------------------------------
    def today(self, queue: str) -> Counts:
        self._roll(self.clock.seconds())
        return self._queues[queue].today

    def recent(self, queue: str) -> Counts:
        now = self.clock.seconds()
        entry = self._queues[queue]
        self._trim(entry, now)
        counts = Counts()
        for _, name, value in entry.recent:
            counts.add(name, value)
        return counts

    def arrival_rate(self, queue: str) -> float:
        """Calls offered per second over the last 30 minutes."""
        return self.recent(queue).offered / WINDOW

    async def load(self) -> None:
        """Today's counters from Redis (after a restart, or written by another engine)."""
        if self.redis is None:
            return
        day = self._day

        async def op(r):
            out = {}
            for queue in self._queues:
                out[queue] = await r.hgetall(keys.console_day(day, queue))
            return out, await r.hgetall(keys.console_handled(day))
        stored, handled = await self.redis.call(op)
        for queue, raw in stored.items():
            counts = Counts()
            for name in COUNTERS:
                try:
                    value = float(raw.get(name, 0))
                except ValueError:
                    continue
                setattr(counts, name, value if name.endswith("_sum") else int(value))
            self._queues[queue].today = counts
        self.handled = {k: int(v) for k, v in handled.items() if k.isdigit() and v.isdigit()}

    # --- internals ------------------------------------------------------------------------
    def _count(self, queue: str, now: float, values: list[tuple[str, float]]) -> None:
        entry = self._queues.get(queue)
        if entry is None:
            return
        self._roll(now)
        for name, value in values:
            entry.recent.append((now, name, value))
            entry.today.add(name, value)
        self._trim(entry, now)
        day = self._day
        self._hincr(keys.console_day(day, queue), values)
        for listener in list(self.listeners):
            listener(queue)

    def _roll(self, now: float) -> None:
        day = self.day(now)
        if day != self._day:
            self._day = day
            for entry in self._queues.values():
                entry.today = Counts()
            self.handled = {}

    @staticmethod
    def _trim(entry: _Queue, now: float) -> None:
        while entry.recent and entry.recent[0][0] < now - WINDOW:
            entry.recent.popleft()

    def _hincr(self, key: str, values: list[tuple[str, float]], sums: bool = True) -> None:
        """Add `values` to the fields of hash `key` (HINCRBYFLOAT for the `_sum` fields when
        `sums`, HINCRBY for the counts) and keep it DAY_TTL: one script on the lane, where a
        redis-py pipeline per event cost 7 % of the reactor in the centre bench."""
        if self.redis is None:
            return
        argv: list[Any] = [DAY_TTL]
        for name, value in values:
            if sums and name.endswith("_sum"):
                argv += [name, "f", float(value)]
            else:
                argv += [name, "i", int(value)]
        d = self.redis.script(_HINCR, [key], argv)
        d.addErrback(lambda f: log.warn("console figures not stored: {e}", e=f.getErrorMessage()))
        if self.writes is not None:
            self.writes.add(d)
