"""Queue metrics computed from replayed AMI captures (tests/fixtures/ami/, copies of
../shared/asterisk/transcripts{,2}/), compared with values computed by hand from the captures."""
from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

import ami_replay
from queue_feed_helpers import queue_labels
from ccengine.ami.wire import Message
from ccengine.stats import QueueEventConsumer, QueueStats
from ccengine.config import QueueConfig as Queue  # the real per-queue settings

# Timestamps read from the captures (QueueCallerJoin, AgentConnect, QueueCallerAbandon).
A_JOIN, A_CONNECT = 1795364564.355047, 1795364566.764455
B_JOIN, B_ABANDON = 1795364610.707579, 1795364620.212644


def queues(*names: str, **overrides) -> dict[str, Queue]:
    return {n: Queue(n, **overrides) for n in names}


LAB_QUEUES = queues("inbound", "complaint", "outbound", "supervisor", "exitq", "shortq")


class Rig:
    def __init__(self, configured=LAB_QUEUES, **consumer_args):
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.registry = CollectorRegistry()
        self.stats = QueueStats.build(self.registry, configured, self.clock)
        for name, value in consumer_args.items():
            setattr(self.stats.consumer, name, value)

    def replay(self, messages) -> None:
        for message in messages:
            self.stats.consumer.handle(message)

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, queue_labels(name, labels))

    def ignored(self, reason: str) -> float:
        return self.value("ccengine_stats_ignored_events_total", reason=reason)

    def series(self) -> set[tuple]:
        return {(s.name, tuple(sorted(s.labels.items())))
                for family in self.registry.collect() for s in family.samples}


def captured(*captures: str) -> list[Message]:
    return [m for capture in captures for m in ami_replay.events(capture)]


def without(message: Message, *headers: str) -> Message:
    drop = {h.lower() for h in headers}
    return Message([(k, v) for k, v in message.items() if k.lower() not in drop])


def test_answered_capture_gives_hand_computed_answer_time():
    """a_answered: one call offered to `complaint`, answered after 2.409408 s (Timestamps), talk 17 s."""
    rig = Rig()
    rig.replay(ami_replay.events("a_answered"))
    q = {"queue": "complaint"}
    assert rig.value("ccengine_queue_offered_total", **q) == 1
    assert rig.value("ccengine_queue_answered_total", **q) == 1
    assert rig.value("ccengine_queue_answered_within_sl_total", **q) == 1
    assert rig.value("ccengine_queue_answer_time_seconds_sum", **q) == pytest.approx(
        A_CONNECT - A_JOIN) == pytest.approx(2.409408)
    assert rig.value("ccengine_queue_answer_time_seconds_bucket", le="2.0", **q) == 0
    assert rig.value("ccengine_queue_answer_time_seconds_bucket", le="5.0", **q) == 1
    assert rig.value("ccengine_queue_talk_time_seconds_sum", **q) == 17
    assert rig.value("ccengine_queue_abandoned_total", **q) == 0
    assert rig.value("ccengine_queue_exits_total", reason="answered", **q) == 1
    assert rig.stats.consumer.tracked == 0
    assert sum(rig.ignored(r) for r in ("unknown_queue", "missing_header", "bad_value",
                                        "join_not_seen", "evicted")) == 0


def test_abandoned_capture_gives_hand_computed_wait():
    """b_abandoned: abandoned after 9.505065 s by the Timestamps (HoldTime says 10), not short."""
    rig = Rig()
    rig.replay(ami_replay.events("b_abandoned"))
    q = {"queue": "complaint"}
    assert rig.value("ccengine_queue_offered_total", **q) == 1
    assert rig.value("ccengine_queue_abandoned_total", **q) == 1
    assert rig.value("ccengine_queue_short_abandoned_total", **q) == 0
    assert rig.value("ccengine_queue_abandon_wait_seconds_sum", **q) == pytest.approx(
        B_ABANDON - B_JOIN) == pytest.approx(9.505065)
    assert rig.value("ccengine_queue_abandon_wait_seconds_bucket", le="5.0", **q) == 0
    assert rig.value("ccengine_queue_abandon_wait_seconds_bucket", le="10.0", **q) == 1
    assert rig.value("ccengine_queue_answered_total", **q) == 0
    assert rig.value("ccengine_queue_exits_total", reason="abandon", **q) == 1
    assert rig.stats.consumer.tracked == 0


def test_without_timestamps_holdtime_is_used():
    """With manager.conf timestampevents off (no Timestamp header) the events' HoldTime is the wait."""
    rig = Rig()
    rig.replay(without(m, "Timestamp") for m in captured("a_answered", "b_abandoned"))
    q = {"queue": "complaint"}
    assert rig.value("ccengine_queue_answer_time_seconds_sum", **q) == 2
    assert rig.value("ccengine_queue_abandon_wait_seconds_sum", **q) == 10


def test_connect_without_join_uses_holdtime_and_is_counted():
    """An AgentConnect whose QueueCallerJoin was not seen (engine started mid-call) uses HoldTime."""
    rig = Rig()
    rig.replay(m for m in ami_replay.events("a_answered") if m.event != "QueueCallerJoin")
    assert rig.value("ccengine_queue_answered_total", queue="complaint") == 1
    assert rig.value("ccengine_queue_answer_time_seconds_sum", queue="complaint") == 2
    assert rig.value("ccengine_queue_offered_total", queue="complaint") == 0
    # the Leave and the Connect each lacked their join
    assert rig.ignored("join_not_seen") == 2


def test_short_abandon_is_separated():
    """An abandon under the queue's short_abandon_seconds counts in short_abandoned too."""
    rig = Rig(configured=queues("complaint", short_abandon_seconds=10))
    rig.replay(without(m, "Timestamp") for m in ami_replay.events("b_abandoned"))
    rig_long = Rig(configured=queues("complaint", short_abandon_seconds=11))
    rig_long.replay(without(m, "Timestamp") for m in ami_replay.events("b_abandoned"))
    # HoldTime 10: not under a 10 s threshold, under an 11 s one
    assert rig.value("ccengine_queue_short_abandoned_total", queue="complaint") == 0
    assert rig_long.value("ccengine_queue_short_abandoned_total", queue="complaint") == 1


def test_service_level_threshold_is_inclusive():
    """An answer after exactly T seconds counts as within the service level (answered <= T)."""
    rig = Rig(configured=queues("complaint", service_level_seconds=2))
    rig.replay(without(m, "Timestamp") for m in ami_replay.events("a_answered"))
    assert rig.value("ccengine_queue_answered_within_sl_total", queue="complaint") == 1
    timed = Rig(configured=queues("complaint", service_level_seconds=2))
    timed.replay(ami_replay.events("a_answered"))  # 2.409 s by the Timestamps
    assert timed.value("ccengine_queue_answered_within_sl_total", queue="complaint") == 0


def test_withdraw_and_abandon_are_told_apart():
    """ami6: caller B withdrawn (QUEUE_WITHDRAW_INFO before Leave) exits `withdraw`; A abandons."""
    rig = Rig()
    rig.replay(ami_replay.events("ami6_queue_priority_withdraw"))
    q = {"queue": "inbound"}
    assert rig.value("ccengine_queue_offered_total", **q) == 2
    # Asterisk reports a withdraw as QueueCallerAbandon too; only the real hang-up is abandoned
    assert rig.value("ccengine_queue_abandoned_total", **q) == 1
    assert rig.value("ccengine_queue_exits_total", reason="withdraw", **q) == 1
    assert rig.value("ccengine_queue_exits_total", reason="abandon", **q) == 1
    assert rig.stats.consumer.tracked == 0


def test_exit_with_key_is_recognised_by_the_context_change():
    """ami7: a caller leaving by a one-digit exit context (Leave Context qexit != hotline) exits `exitkey`."""
    rig = Rig()
    rig.replay(ami_replay.events("ami7_queue_exit_context"))
    assert rig.value("ccengine_queue_exits_total", queue="exitq", reason="exitkey") == 1
    assert rig.value("ccengine_queue_abandoned_total", queue="exitq") == 0
    assert rig.stats.consumer.tracked == 0


def test_ring_no_answer_then_answer_measures_whole_wait():
    """ami9: first agent rings out, second answers: answer time is 8.711737 s from the Timestamps."""
    rig = Rig()
    rig.replay(ami_replay.events("ami9_pause_rna_incall"))
    assert rig.value("ccengine_queue_answer_time_seconds_sum", queue="shortq") == pytest.approx(
        1795366481.496355 - 1795366472.784618)
    assert rig.value("ccengine_queue_talk_time_seconds_sum", queue="shortq") == 7


def test_unknown_queue_creates_no_series_and_is_counted():
    """Events for a queue missing from the configuration are ignored and counted as unknown_queue."""
    rig = Rig(configured=queues("inbound"))
    before = rig.series()
    rig.replay(ami_replay.events("a_answered"))
    # QueueCallerJoin, QueueCallerLeave, AgentConnect, AgentComplete name the queue `complaint`
    assert rig.ignored("unknown_queue") == 4
    after = rig.series()
    assert {s for s in after if ("queue", "complaint") in s[1]} == set()
    assert after == before


def test_out_of_order_events_do_not_raise_and_are_counted():
    """Events replayed backwards (Complete, Connect, Leave before Join) raise nothing and are counted."""
    rig = Rig()
    rig.replay(reversed(ami_replay.events("a_answered")))
    assert rig.ignored("join_not_seen") == 2  # Connect and Leave without a join
    assert rig.value("ccengine_queue_offered_total", queue="complaint") == 1
    # the late Join leaves a waiting caller behind until a resync
    assert rig.registry.get_sample_value("ccengine_queue_waiting_calls", {"queue": "complaint"}) == 1


def test_missing_headers_and_bad_values_are_counted():
    """Truncated events (no Uniqueid, no HoldTime) and bad numbers are ignored and counted by reason."""
    rig = Rig()
    join, = ami_replay.events("a_answered", "QueueCallerJoin")
    connect, = ami_replay.events("a_answered", "AgentConnect")
    abandon, = ami_replay.events("b_abandoned", "QueueCallerAbandon")
    rig.replay([without(join, "Uniqueid"), without(connect, "HoldTime", "Timestamp"),
                without(join, "Queue")])
    assert rig.ignored("missing_header") == 3
    bad = [Message([(k, "-3" if k == "HoldTime" else v) for k, v in abandon.items()]),
           Message([(k, "nan" if k == "Timestamp" else v) for k, v in join.items()]),
           Message([(k, "x" if k == "TalkTime" else v)
                    for k, v in ami_replay.events("a_answered", "AgentComplete")[0].items()])]
    rig.replay(bad)
    assert rig.ignored("bad_value") == 3
    assert rig.value("ccengine_queue_offered_total", queue="complaint") == 0
    assert rig.value("ccengine_queue_abandoned_total", queue="complaint") == 0


QUEUE_EVENTS = captured("a_answered", "b_abandoned", "ami6_queue_priority_withdraw")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(QUEUE_EVENTS) - 1),
                          st.lists(st.integers(0, 40), max_size=6),
                          st.sampled_from(["", "abc", "-1", "1e400", "\x00", "3"])),
                max_size=30))
def test_mangled_events_never_raise(edits):
    """Real events with random headers dropped or values replaced never raise out of handle()."""
    rig = Rig()
    for index, dropped, garbage in edits:
        items = QUEUE_EVENTS[index].items()
        names = [items[i % len(items)][0] for i in dropped]
        mangled = [(k, garbage if k in names[:1] else v) for k, v in items if k not in names[1:]]
        rig.stats.consumer.handle(Message(mangled))
    assert rig.stats.consumer.tracked <= len(edits)


def test_tracked_joins_are_bounded():
    """Past max_tracked, the oldest join record is evicted and counted."""
    rig = Rig(max_tracked=3)
    join, = ami_replay.events("a_answered", "QueueCallerJoin")
    for n in range(5):
        rig.stats.consumer.handle(Message(
            [(k, f"x-{n}" if k == "Uniqueid" else v) for k, v in join.items()]))
    assert rig.stats.consumer.tracked == 3
    assert rig.ignored("evicted") == 2


def test_ten_thousand_distinct_callers_leave_series_unchanged():
    """10,000 distinct caller numbers and uniqueids through the consumer add no series."""
    rig = Rig()
    # the queue events of both calls (VarSet is skipped: none of them is a queue exit here)
    template = [m for m in captured("a_answered", "b_abandoned")
                if m.event in QueueEventConsumer.EVENTS and m.event != "VarSet"]

    def call(n: int):
        for message in template:
            yield Message([(k, f"call-{n}" if k in ("Uniqueid", "Linkedid") else
                            f"1380000{n:04d}" if k == "CallerIDNum" else v)
                           for k, v in message.items()])

    rig.replay(call(0))
    before = rig.series()
    for n in range(1, 10_001):
        rig.replay(call(n))
    assert rig.series() == before
    assert rig.value("ccengine_queue_offered_total", queue="complaint") == 2 * 10_001
    assert rig.stats.consumer.tracked == 0
