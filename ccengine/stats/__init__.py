"""Queue statistics for operations: AMI queue events -> Prometheus metrics (docs/metrics.md).

stats/feature.py wires it with `QueueStats.build(registry, config.queues, clock, is_open)` and
hands `stats.consumer.handle` the queue feed's events and `stats.consumer.resync` its QueueStatus
answer after every AMI (re)login (ccengine/queues/feed.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry

from ccengine.stats.metrics import (Clock, QueueGaugeCollector, QueueMetrics, QueueSettings,
                                    always_open)
from ccengine.stats.queue_events import QueueEventConsumer
from ccengine.stats.waiting import WaitingCallers

__all__ = ["QueueStats", "QueueMetrics", "QueueEventConsumer", "QueueGaugeCollector",
           "WaitingCallers"]


@dataclass(frozen=True)
class QueueStats:
    metrics: QueueMetrics
    waiting: WaitingCallers
    consumer: QueueEventConsumer
    collector: QueueGaugeCollector

    @classmethod
    def build(cls, registry: CollectorRegistry, queues: Mapping[str, QueueSettings],
              clock: Clock, is_open: Callable[[str, float], bool] = always_open,
              servers: Iterable[str] = ("asterisk",)) -> QueueStats:
        metrics = QueueMetrics(registry, queues, servers)
        waiting = WaitingCallers()
        consumer = QueueEventConsumer(metrics, waiting, queues, clock)
        collector = QueueGaugeCollector(queues, waiting, clock, is_open)
        registry.register(collector)
        return cls(metrics, waiting, consumer, collector)
