"""Scrape-time queue gauges: waiting calls, longest wait, thresholds, targets, opening hours, and the
QueueStatus resync (captures a_answered, b_abandoned, d_queuestatus_waiting_caller in tests/fixtures/ami/)."""
from __future__ import annotations


import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

import ami_replay
from ccengine.ami.wire import Message
from ccengine.stats import QueueStats, WaitingCallers
from ccengine.stats.metrics import DEFAULT_WAIT_BUCKETS, wait_buckets
from ccengine.config import QueueConfig as Queue  # the real per-queue settings


QUEUES = {n: Queue(n) for n in ("inbound", "complaint")}


def build(queues=QUEUES, is_open=None):
    clock = Clock()
    clock.advance(5000)
    registry = CollectorRegistry()
    kwargs = {"is_open": is_open} if is_open else {}
    return clock, registry, QueueStats.build(registry, queues, clock, **kwargs)


def gauge(registry, name, queue):
    return registry.get_sample_value(name, {"queue": queue})


def test_join_then_leave_moves_the_waiting_gauges():
    """A joined caller is waiting with a growing wait until the Leave event removes them."""
    clock, registry, stats = build()
    events = ami_replay.events("b_abandoned", "QueueCallerJoin", "QueueCallerAbandon",
                               "QueueCallerLeave")
    stats.consumer.handle(events[0])
    clock.advance(7)
    assert gauge(registry, "ccengine_queue_waiting_calls", "complaint") == 1
    assert gauge(registry, "ccengine_queue_longest_wait_seconds", "complaint") == 7
    assert gauge(registry, "ccengine_queue_waiting_calls", "inbound") == 0
    for event in events[1:]:
        stats.consumer.handle(event)
    assert gauge(registry, "ccengine_queue_waiting_calls", "complaint") == 0
    assert gauge(registry, "ccengine_queue_longest_wait_seconds", "complaint") == 0


def test_answered_caller_leaves_the_snapshot():
    """a_answered: after QueueCallerLeave/AgentConnect nobody is waiting in `complaint`."""
    clock, registry, stats = build()
    for event in ami_replay.events("a_answered"):
        stats.consumer.handle(event)
    assert gauge(registry, "ccengine_queue_waiting_calls", "complaint") == 0


def test_caller_between_slices_still_waits_from_the_first_join():
    """b_abandoned's Join/Leave as hold-loop slices (no capture has a queue timeout; app_queue.c
    sends Leave then QUEUESTATUS=TIMEOUT): in the announcement the caller still counts as waiting,
    with the wait since the first join, until the channel hangs up."""
    clock, registry, stats = build()
    join, = ami_replay.events("b_abandoned", "QueueCallerJoin")
    leave, = ami_replay.events("b_abandoned", "QueueCallerLeave")
    hangup = [m for m in ami_replay.events("b_abandoned", "Hangup")
              if m.get("Uniqueid") == join.get("Uniqueid")][-1]
    timeout = Message({"Event": "VarSet", "Uniqueid": join.get("Uniqueid"),
                       "Variable": "QUEUESTATUS", "Value": "TIMEOUT"})
    stats.consumer.handle(join)
    clock.advance(30)
    stats.consumer.handle(leave)
    stats.consumer.handle(timeout)
    clock.advance(10)
    assert gauge(registry, "ccengine_queue_waiting_calls", "complaint") == 1
    assert gauge(registry, "ccengine_queue_longest_wait_seconds", "complaint") == 40
    clock.advance(5)
    stats.consumer.handle(join)  # back into the queue after the announcement
    clock.advance(5)
    assert gauge(registry, "ccengine_queue_waiting_calls", "complaint") == 1
    assert gauge(registry, "ccengine_queue_longest_wait_seconds", "complaint") == 50
    stats.consumer.handle(leave)
    stats.consumer.handle(hangup)
    assert gauge(registry, "ccengine_queue_waiting_calls", "complaint") == 0


def test_resync_keeps_callers_between_slices():
    """A QueueStatus taken while a caller hears the announcement (not in any queue) keeps them waiting."""
    clock, registry, stats = build()
    join, = ami_replay.events("b_abandoned", "QueueCallerJoin")
    leave, = ami_replay.events("b_abandoned", "QueueCallerLeave")
    stats.consumer.handle(join)
    clock.advance(30)
    stats.consumer.handle(leave)
    stats.consumer.resync(ami_replay.events("d_queuestatus_waiting_caller"))
    assert gauge(registry, "ccengine_queue_waiting_calls", "complaint") == 1
    assert gauge(registry, "ccengine_queue_longest_wait_seconds", "complaint") == 30
    assert gauge(registry, "ccengine_queue_waiting_calls", "inbound") == 1


def test_resync_replaces_the_snapshot_from_queue_entries():
    """d_queuestatus_waiting_caller: one QueueEntry (inbound, Wait 3) replaces a stale waiting caller."""
    clock, registry, stats = build()
    join, = ami_replay.events("b_abandoned", "QueueCallerJoin")
    stats.consumer.handle(join)  # its Leave was lost while disconnected
    status = ami_replay.events("d_queuestatus_waiting_caller")
    stats.consumer.resync(status)
    assert gauge(registry, "ccengine_queue_waiting_calls", "complaint") == 0
    assert gauge(registry, "ccengine_queue_waiting_calls", "inbound") == 1
    assert gauge(registry, "ccengine_queue_longest_wait_seconds", "inbound") == 3
    clock.advance(2)
    assert gauge(registry, "ccengine_queue_longest_wait_seconds", "inbound") == 5
    # the caller whose Leave was lost exits as `other`; the resynced one is tracked
    assert registry.get_sample_value("ccengine_queue_exits_total",
                                     {"queue": "complaint", "reason": "other",
                                      "server": "asterisk"}) == 1
    assert stats.consumer.tracked == 1


def test_config_gauges_and_opening_hours():
    """Threshold, targets and minimum staffing come from the queue config; open from is_open(name, now)."""
    queues = {"inbound": Queue("inbound", service_level_seconds=20, sl_target=0.9,
                               abandon_target=0.03, min_available_agents=2),
              "complaint": Queue("complaint")}
    seen = []

    def is_open(name, now):
        seen.append(now)
        return name == "inbound"

    clock, registry, _ = build(queues, is_open)
    assert gauge(registry, "ccengine_queue_sl_threshold_seconds", "inbound") == 20
    assert gauge(registry, "ccengine_queue_sl_target", "inbound") == 0.9
    assert gauge(registry, "ccengine_queue_abandon_target", "inbound") == 0.03
    assert gauge(registry, "ccengine_queue_min_available_agents", "inbound") == 2
    assert gauge(registry, "ccengine_queue_open", "inbound") == 1
    assert gauge(registry, "ccengine_queue_open", "complaint") == 0
    assert set(seen) == {clock.seconds()}


def test_buckets_include_every_threshold():
    """Histogram buckets are the defaults plus each queue's service-level and short-abandon thresholds."""
    queues = {"a": Queue("a", service_level_seconds=25, short_abandon_seconds=4),
              "b": Queue("b", service_level_seconds=15, short_abandon_seconds=0)}
    assert set(wait_buckets(queues.values())) == set(DEFAULT_WAIT_BUCKETS) | {25.0, 4.0}
    _, registry, _ = build(queues)
    for le in ("25.0", "4.0", "15.0"):
        assert registry.get_sample_value("ccengine_queue_answer_time_seconds_bucket",
                                         {"queue": "a", "le": le, "server": "asterisk"}) == 0


def test_collector_names_are_registered_once():
    """The gauge collector describes its families, so registering a duplicate fails loudly."""
    _, registry, stats = build()
    with pytest.raises(ValueError):
        registry.register(stats.collector)


def test_waiting_snapshot_is_bounded():
    """Past max_callers the oldest waiting caller is dropped and add() reports the eviction."""
    waiting = WaitingCallers(max_callers=2)
    assert not waiting.add("a", "inbound", 1.0)
    assert not waiting.add("b", "inbound", 2.0)
    assert waiting.add("c", "inbound", 3.0)
    assert "a" not in waiting and len(waiting) == 2
    assert waiting.summary(["inbound"], 10.0)["inbound"].longest_wait == 8.0
