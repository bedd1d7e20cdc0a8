"""Wiring of the queue statistics (docs/metrics.md): AMI queue events -> queue metrics.

`ccengine_queue_open{queue}` follows each queue's opening hours in the centre's time zone
(calls/hours.py). After every AMI (re)login the waiting snapshot is rebuilt from the queue
feed's QueueStatus (ccengine/queues/feed.py).
A timer closes the stays of callers who left between two hold-loop slices and neither came back
nor hung up within `leave_grace` (queue_events.py), even when no AMI event arrives.
"""
from __future__ import annotations

from dataclasses import dataclass

from twisted.application.internet import TimerService

from ccengine.calls.hours import is_open, local_now
from ccengine.feature import EngineContext, Feature
from ccengine.stats import QueueStats

EXPIRE_INTERVAL = 5.0  # seconds between checks for callers who did not come back


@dataclass(kw_only=True)
class StatsFeature(Feature):
    stats: QueueStats


def build(ctx: EngineContext) -> StatsFeature:
    queues = dict(ctx.config.queues)
    timezone = ctx.config.company.timezone

    def queue_open(name: str, now: float) -> bool:
        return is_open(queues[name], local_now(now, timezone))

    servers = [server.name for server in ctx.config.ami.server_list()]
    stats = QueueStats.build(ctx.registry, queues, ctx.clock, queue_open, servers)
    stats.collector.counts = lambda server: ctx.counts_events(server)
    feature = StatsFeature(stats=stats)
    expiry = TimerService(EXPIRE_INTERVAL, stats.consumer.expire)
    expiry.clock = ctx.clock
    feature.services.append(expiry)
    if ctx.queues is not None:
        ctx.queues.on(stats.consumer.EVENTS, stats.consumer.handle)
        ctx.queues.on_status(stats.consumer.resync)
    return feature
