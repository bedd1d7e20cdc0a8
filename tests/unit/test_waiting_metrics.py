"""Waiting metrics on a fresh registry, and the AMI-fed staffing and estimate-error ledger.

AMI events are the recorded ones: AgentConnect/AgentComplete from a_answered (queue
complaint, HoldTime 2, TalkTime 17), QueueMember/QueueMemberPause from ami9_pause_rna_incall
(queue shortq), copied in tests/fixtures/ami/."""
from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

import ami_replay
from ccengine.waiting.events import EstimateLedger, WaitingEvents
from ccengine.waiting.metrics import WaitingMetrics


class RecordingLine:
    def __init__(self):
        self.left, self.talk = [], []

    def leave(self, queue, uniqueid):
        from twisted.internet.defer import succeed
        self.left.append((queue, uniqueid))
        return succeed(True)

    def record_talk_time(self, queue, seconds):
        from twisted.internet.defer import succeed
        self.talk.append((queue, seconds))
        return succeed(None)


def test_callback_counters_and_pending_gauge_by_queue():
    """Finished callbacks count by outcome and queue; the pending gauge is a replaced snapshot;
    unknown queues never become a label."""
    registry = CollectorRegistry()
    metrics = WaitingMetrics(registry, ["inbound", "complaint"])
    metrics.requested.labels("inbound").inc()
    metrics.finished("completed", "inbound")
    metrics.finished("failed", "complaint")
    metrics.finished("expired", "complaint")
    metrics.finished("expired", "nosuchqueue")
    metrics.set_pending({"inbound": 4})
    metrics.set_pending({"inbound": 2})
    get = registry.get_sample_value
    assert get("ccengine_callbacks_requested_total", {"queue": "inbound"}) == 1.0
    assert get("ccengine_callbacks_completed_total", {"queue": "inbound"}) == 1.0
    assert get("ccengine_callbacks_failed_total", {"queue": "complaint"}) == 1.0
    assert get("ccengine_callbacks_expired_total", {"queue": "complaint"}) == 1.0
    assert get("ccengine_callbacks_expired_total", {"queue": "nosuchqueue"}) is None
    assert get("ccengine_callbacks_pending", {"queue": "inbound"}) == 2.0
    assert get("ccengine_callbacks_pending", {"queue": "complaint"}) == 0.0


def test_estimate_error_is_estimated_minus_actual_at_agent_connect():
    """Announced 60 s at t=1000, AgentConnect (a_answered) at t=1090: error -30 s observed
    once in the complaint histogram; the caller leaves the line."""
    registry = CollectorRegistry()
    metrics = WaitingMetrics(registry, ["complaint"])
    clock = Clock()
    ledger = EstimateLedger(metrics)
    line = RecordingLine()
    events = WaitingEvents(line, ledger, clock, ["complaint"])
    connect, = ami_replay.events("a_answered", "AgentConnect")
    uniqueid = connect["Uniqueid"]
    clock.advance(1000)
    ledger.announced(uniqueid, "complaint", clock.seconds(), 60.0)
    ledger.announced(uniqueid, "complaint", clock.seconds() + 30, 10.0)   # later ones ignored
    clock.advance(90)
    events.agent_connect(connect)
    labels = {"queue": "complaint"}
    assert registry.get_sample_value("ccengine_wait_estimate_error_seconds_count", labels) == 1.0
    # prometheus_client exports no _sum for histograms with negative buckets: read the buckets.
    assert registry.get_sample_value("ccengine_wait_estimate_error_seconds_bucket",
                                     {**labels, "le": "-30.0"}) == 1.0
    assert registry.get_sample_value("ccengine_wait_estimate_error_seconds_bucket",
                                     {**labels, "le": "-60.0"}) == 0.0
    assert line.left == [("complaint", uniqueid)]


def test_agent_complete_feeds_the_handling_time_window():
    """AgentComplete's TalkTime (17 s in a_answered) becomes one handling-time sample."""
    line = RecordingLine()
    events = WaitingEvents(line, EstimateLedger(WaitingMetrics(CollectorRegistry(), [])),
                           Clock(), ["complaint"])
    complete, = ami_replay.events("a_answered", "AgentComplete")
    events.agent_complete(complete)
    assert line.talk == [("complaint", 17.0)]
