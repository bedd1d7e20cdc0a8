"""Queue metric families (names fixed by docs/architecture.md "Metrics"; meaning in docs/metrics.md).

Labels are only `queue` (one of the configured queues) and small fixed `reason` sets: an event for
a queue that is not configured is counted in `ccengine_stats_ignored_events_total` instead of
creating a series, so the number of series never depends on traffic.

`QueueGaugeCollector` computes the gauges at scrape time from the waiting snapshot and the
configuration, with an injected clock.
"""
from __future__ import annotations

from typing import Protocol
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ccengine.stats.waiting import WaitingCallers

# Waiting times in seconds. The service-level and short-abandon thresholds of every configured
# queue are merged in, so `le="<threshold>"` is always an exact bucket boundary.
DEFAULT_WAIT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0,
                        300.0, 600.0, 1200.0)
TALK_TIME_BUCKETS = (10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)

# How a caller left a queue (docs/metrics.md says how each one is recognised).
EXIT_REASONS = ("answered", "abandon", "callback", "withdraw", "exitkey", "timeout",
                "leaveempty", "leaveunavail", "other")

# Why an AMI event was ignored, or only partly used.
IGNORED_REASONS = ("unknown_queue", "missing_header", "bad_value", "join_not_seen", "evicted")


class QueueSettings(Protocol):
    """The part of config.QueueConfig this package reads (duck-typed, read-only)."""
    @property
    def name(self) -> str: ...

    @property
    def service_level_seconds(self) -> int: ...

    @property
    def short_abandon_seconds(self) -> int: ...


class Clock(Protocol):
    def seconds(self) -> float: ...


def wait_buckets(queues: Iterable[QueueSettings]) -> tuple[float, ...]:
    """The default wait buckets plus each queue's service-level and short-abandon thresholds."""
    bounds = set(DEFAULT_WAIT_BUCKETS)
    for queue in queues:
        bounds.add(float(queue.service_level_seconds))
        if queue.short_abandon_seconds > 0:
            bounds.add(float(queue.short_abandon_seconds))
    return tuple(sorted(bounds))


class QueueMetrics:
    """Counters and histograms fed by `queue_events.QueueEventConsumer`, per queue and per
    Asterisk server (`server`: a name from the configuration, ami.name or ami.servers; so
    `sum by (queue)` is the centre's figure and the label stays bounded)."""

    def __init__(self, registry: CollectorRegistry, queues: Mapping[str, QueueSettings],
                 servers: Iterable[str] = ("asterisk",)):
        buckets = wait_buckets(queues.values())
        self.servers = tuple(servers)
        self.default_server = self.servers[0]

        def counter(name: str, doc: str, labels: tuple[str, ...] = ("queue", "server")) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.offered = counter("ccengine_queue_offered",
                               "Callers who joined the queue (QueueCallerJoin)")
        self.answered = counter("ccengine_queue_answered",
                                "Callers connected to an agent (AgentConnect)")
        self.answered_within_sl = counter(
            "ccengine_queue_answered_within_sl",
            "Callers answered within the queue's service-level threshold")
        self.abandoned = counter("ccengine_queue_abandoned",
                                 "Callers who hung up while waiting (QueueCallerAbandon)")
        self.short_abandoned = counter(
            "ccengine_queue_short_abandoned",
            "Abandoned callers who waited less than the queue's short-abandon threshold")
        self.exits = counter("ccengine_queue_exits",
                             "Callers who left the queue, by how they left",
                             ("queue", "reason", "server"))
        self.ignored = counter("ccengine_stats_ignored_events",
                               "Queue AMI events ignored or only partly used, by reason",
                               ("reason",))
        self.answer_time = Histogram(
            "ccengine_queue_answer_time_seconds",
            "Wait from joining the queue until an agent answered", ["queue", "server"],
            buckets=buckets, registry=registry)
        self.abandon_wait = Histogram(
            "ccengine_queue_abandon_wait_seconds",
            "Wait from joining the queue until the caller hung up", ["queue", "server"],
            buckets=buckets, registry=registry)
        self.talk_time = Histogram(
            "ccengine_queue_talk_time_seconds",
            "Talk time of answered queue calls (AgentComplete TalkTime)", ["queue", "server"],
            buckets=TALK_TIME_BUCKETS, registry=registry)
        # Every series exists from the start (value 0): rate() and the dashboards then see a
        # queue before its first call, and the series count is fixed by the configuration.
        for name in queues:
            for server in self.servers:
                for family in (self.offered, self.answered, self.answered_within_sl,
                               self.abandoned, self.short_abandoned, self.answer_time,
                               self.abandon_wait, self.talk_time):
                    family.labels(queue=name, server=server)
                for reason in EXIT_REASONS:
                    self.exits.labels(queue=name, reason=reason, server=server)
        for reason in IGNORED_REASONS:
            self.ignored.labels(reason=reason)

    def ignore(self, reason: str) -> None:
        if reason not in IGNORED_REASONS:
            raise ValueError(f"unknown ignored-event reason {reason!r}")
        self.ignored.labels(reason=reason).inc()

    def exit(self, queue: str, reason: str, server: str) -> None:
        if reason not in EXIT_REASONS:
            raise ValueError(f"unknown exit reason {reason!r}")
        self.exits.labels(queue=queue, reason=reason, server=server).inc()


def always_open(queue: str, now: float) -> bool:
    return True


class QueueGaugeCollector(Collector):
    """Gauges computed at scrape time: waiting calls, longest wait, thresholds, targets, open.

    `is_open(queue_name, now)` answers whether the queue is within its opening hours at `now`
    (epoch seconds from the injected clock); the default treats every queue as always open.
    Targets are read with getattr so a queue object without them still yields the defaults of
    config.QueueConfig.
    """

    def __init__(self, queues: Mapping[str, QueueSettings], waiting: WaitingCallers,
                 clock: Clock, is_open: Callable[[str, float], bool] = always_open):
        self.queues = queues
        self.waiting = waiting
        self.clock = clock
        self.is_open = is_open
        # Which servers' waiting callers this engine reports: with ami.shared, those whose
        # events lease it holds (the owner of each reports them, so sum() across engines is
        # right; stats/feature.py sets it).
        self.counts: Callable[[str], bool] = lambda server: True

    def _families(self) -> dict[str, GaugeMetricFamily]:
        spec = {
            "ccengine_queue_waiting_calls": "Callers waiting in the queue now",
            "ccengine_queue_longest_wait_seconds": "Wait of the caller waiting longest now",
            "ccengine_queue_sl_threshold_seconds": "Service-level threshold T of the queue",
            "ccengine_queue_sl_target": "Service-level target of the queue (fraction)",
            "ccengine_queue_abandon_target": "Highest acceptable abandonment rate (fraction)",
            "ccengine_queue_min_available_agents":
                "Fewest available agents acceptable while the queue is open",
            "ccengine_queue_open": "1 while the queue is within its opening hours",
        }
        return {name: GaugeMetricFamily(name, doc, labels=["queue"]) for name, doc in spec.items()}

    def describe(self):
        return list(self._families().values())

    def collect(self):
        families = self._families()
        now = self.clock.seconds()
        waiting = self.waiting.summary(self.queues, now, self.counts)
        for name, queue in self.queues.items():
            values = {
                "ccengine_queue_waiting_calls": waiting[name].calls,
                "ccengine_queue_longest_wait_seconds": waiting[name].longest_wait,
                "ccengine_queue_sl_threshold_seconds": queue.service_level_seconds,
                "ccengine_queue_sl_target": getattr(queue, "sl_target", 0.8),
                "ccengine_queue_abandon_target": getattr(queue, "abandon_target", 0.05),
                "ccengine_queue_min_available_agents": getattr(queue, "min_available_agents", 1),
                "ccengine_queue_open": 1 if self.is_open(name, now) else 0,
            }
            for metric, value in values.items():
                families[metric].add_metric([name], float(value))
        return list(families.values())
