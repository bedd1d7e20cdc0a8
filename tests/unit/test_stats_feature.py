"""Wiring of ccengine.stats into the engine: opening-hours gauge, AMI subscriptions, resync on login
(QueueStatus answer from the d_queuestatus_waiting_caller capture, tests/fixtures/ami/)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

import ami_replay
from ccengine.config import load_config
from ccengine.feature import EngineContext
from ccengine.stats import feature
from queue_feed_helpers import FakeAmi, feed_over


def build(at: datetime, ami=None):
    clock = Clock()
    clock.advance(at.timestamp())
    registry = CollectorRegistry()
    ctx = EngineContext(config=load_config(None), clock=clock, registry=registry, redis=None,
                        ami=ami, prompter=None,
                        queues=feed_over(ami, clock) if ami is not None else None)
    return registry, ctx, feature.build(ctx)


def test_queue_open_follows_opening_hours_in_the_centre_time_zone():
    """inbound (08:00-21:00, Asia/Shanghai by default) is open at 10:00 and closed at 22:00 local time."""
    tz = ZoneInfo("Asia/Shanghai")
    day, night = datetime(2026, 1, 5, 10, 0, tzinfo=tz), datetime(2026, 1, 5, 22, 0, tzinfo=tz)
    assert build(day)[0].get_sample_value("ccengine_queue_open", {"queue": "inbound"}) == 1
    assert build(night)[0].get_sample_value("ccengine_queue_open", {"queue": "inbound"}) == 0


def test_feature_reads_the_queue_feed_and_its_one_queuestatus_per_login():
    """With AMI, the consumer gets the queue feed's events, and each login's one QueueStatus
    (sent by the feed, not by the feature) rebuilds the waiting snapshot."""
    ami = FakeAmi(ami_replay.events("d_queuestatus_waiting_caller"))
    registry, ctx, built = build(datetime(2026, 1, 5, 10, 0, tzinfo=ZoneInfo("UTC")), ami)
    assert {"QueueCallerJoin", "AgentConnect", "QueueCallerAbandon"} <= ami.subscribed
    assert built.on_ami_connected == []
    ami.login()
    assert ami.sent == ["QueueStatus"]
    assert registry.get_sample_value("ccengine_queue_waiting_calls", {"queue": "inbound"}) == 1
    assert built.stats.waiting is not None


def test_feature_without_ami_still_exports_the_configured_queues():
    """With AMI disabled the queue series still exist (zero), and nothing is subscribed."""
    registry, _, built = build(datetime(2026, 1, 5, 10, 0, tzinfo=ZoneInfo("UTC")))
    assert built.on_ami_connected == []
    assert registry.get_sample_value("ccengine_queue_offered_total",
                                     {"queue": "complaint", "server": "asterisk"}) == 0


def test_timer_closes_callers_who_did_not_come_back_without_any_event():
    """A caller who left a slice (b_abandoned Join/Leave, no Abandon) and never returns is closed by the timer."""
    registry, ctx, built = build(datetime(2026, 1, 5, 10, 0, tzinfo=ZoneInfo("UTC")))
    consumer = built.stats.consumer
    for event in ami_replay.events("b_abandoned", "QueueCallerJoin", "QueueCallerLeave"):
        consumer.handle(event)
    for service in built.services:
        service.startService()
    try:
        ctx.clock.advance(consumer.leave_grace + feature.EXPIRE_INTERVAL)
        assert registry.get_sample_value("ccengine_queue_exits_total",
                                         {"queue": "complaint", "reason": "other",
                                          "server": "asterisk"}) == 1
        assert consumer.tracked == 0
    finally:
        for service in built.services:
            service.stopService()
