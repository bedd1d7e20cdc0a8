"""Wiring of the queue statistics (docs/metrics.md): AMI queue events -> queue metrics.

`ccengine_queue_open{queue}` follows each queue's opening hours in the centre's time zone
(calls/hours.py). After every AMI (re)login the waiting snapshot is rebuilt from QueueStatus.
"""
from __future__ import annotations

from ccengine.calls.hours import is_open, local_now
from ccengine.feature import EngineContext, Feature
from ccengine.stats import QueueStats


def build(ctx: EngineContext) -> Feature:
    queues = dict(ctx.config.queues)
    timezone = ctx.config.company.timezone

    def queue_open(name: str, now: float) -> bool:
        return is_open(queues[name], local_now(now, timezone))

    stats = QueueStats.build(ctx.registry, queues, ctx.clock, queue_open)
    ctx.shared["queue_stats"] = stats
    feature = Feature()
    if ctx.ami is not None:
        stats.consumer.attach(ctx.ami)
        feature.on_ami_connected.append(lambda: stats.consumer.request_resync(ctx.ami))
    return feature
