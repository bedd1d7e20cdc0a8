"""AmiProtocol driven by recorded Asterisk 22 AMI traffic on a StringTransport with task.Clock.

Fixtures: tests/fixtures/ami/ copies of ../shared/asterisk/transcripts (c_member_actions,
d_queuestatus_waiting_caller) and transcripts2 (ami4_login_ping_events, ami5_originate,
ami9_pause_rna_incall).
"""
from __future__ import annotations

import random

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

import ami_replay
from ccengine.ami.protocol import AmiActionError, AmiConnectionLost, AmiProtocol, AmiTimeout
from ccengine.ami.wire import Action, Message
from deferred_results import failure_of as _failure, result_of as _result

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


class Wired:
    def __init__(self, banner: bool = True):
        self.clock = Clock()
        self.transport = StringTransport()
        self.protocol = AmiProtocol(self.clock, "t")
        self.events: list[Message] = []
        self.bad: list[str] = []
        self.protocol.on_event = self.events.append
        self.protocol.on_bad_message = lambda reason, detail: self.bad.append(reason)
        self.protocol.makeConnection(self.transport)
        if banner:
            self.protocol.dataReceived(BANNER)

    def feed(self, messages, chunk_size=None):
        ami_replay.feed_protocol(self.protocol, messages, chunk_size)


def _recorded(capture: str, action_id: str) -> list[Message]:
    return [m for m in ami_replay.received_messages(capture) if m.action_id == action_id]


def test_banner_fires_banner_received():
    """The banner line is stored and fires `banner_received` with its text."""
    wired = Wired(banner=False)
    seen = []
    wired.protocol.banner_received.addCallback(seen.append)
    wired.protocol.dataReceived(ami_replay.raw_bytes("ami4_login_ping_events")[:20])
    assert seen == []
    wired.protocol.dataReceived(ami_replay.raw_bytes("ami4_login_ping_events")[20:40])
    assert seen == ["Asterisk Call Manager/11.0.0"] == [wired.protocol.banner]


def test_responses_are_matched_by_action_id():
    """Two pending actions answered in reverse order each get their own response (ami4 Pings)."""
    wired = Wired()
    first = wired.protocol.send_action(Action("Ping"), timeout=10)
    second = wired.protocol.send_action(Action("Ping"), timeout=10)
    assert wired.transport.value() == (Action("Ping", action_id="t-1").to_bytes()
                                       + Action("Ping", action_id="t-2").to_bytes())
    pong_a, pong_b = [m for m in ami_replay.received_messages("ami4_login_ping_events", "c1")
                      if m.get("Ping") == "Pong"]
    wired.feed([ami_replay.retag(pong_b, "t-2"), ami_replay.retag(pong_a, "t-1")])
    assert _result(first)["Timestamp"] == pong_a["Timestamp"]
    assert _result(second)["Timestamp"] == pong_b["Timestamp"]
    assert wired.protocol.pending_count == 0 and wired.bad == []


def test_error_response_fails_with_the_message():
    """QueueRemove of a non-member answers `Response: Error` -> AmiActionError keeping the Message
    (c_member_actions.ami.txt, lab-9)."""
    wired = Wired()
    pending = wired.protocol.send_action(
        Action("QueueRemove", [("Queue", "supervisor"), ("Interface", "PJSIP/1005")]), timeout=10)
    wired.feed([ami_replay.retag(m, "t-1") for m in _recorded("c_member_actions", "lab-9")])
    failure = _failure(pending)
    assert failure.check(AmiActionError)
    assert str(failure.value) == "Unable to remove interface: Not there"
    assert failure.value.message.response == "Error"


def test_queue_status_list_is_collected_until_complete():
    """QueueStatus returns [response, QueueParams, QueueMember x2, QueueEntry, QueueStatusComplete]
    while unrelated events still reach on_event (d_queuestatus_waiting_caller, lab-6)."""
    wired = Wired()
    pending = wired.protocol.send_list_action(Action("QueueStatus", [("Queue", "inbound")]), 10)
    recorded = _recorded("d_queuestatus_waiting_caller", "lab-6")
    unrelated = ami_replay.events("a_answered", "QueueCallerJoin")[0]
    stream = [ami_replay.retag(m, "t-1") for m in recorded]
    stream.insert(2, unrelated)
    wired.feed(stream[:-1])
    assert wired.protocol.pending_count == 1
    wired.feed(stream[-1:])
    result = _result(pending)
    assert [m.event or m.response for m in result] == [
        "Success", "QueueParams", "QueueMember", "QueueMember", "QueueEntry",
        "QueueStatusComplete"]
    assert result[4]["Position"] == "1" and result[0]["EventList"] == "start"
    assert wired.events == [unrelated]


def test_list_action_refused_fails():
    """A list action answered with `Response: Error` fails with AmiActionError (format as in
    c_member_actions lab-9)."""
    wired = Wired()
    pending = wired.protocol.send_list_action(Action("QueueStatus", [("Queue", "nosuch")]), 10)
    wired.feed([ami_replay.retag(_recorded("c_member_actions", "lab-9")[0], "t-1")])
    assert _failure(pending).check(AmiActionError)


def test_events_echoing_a_finished_action_id_are_dispatched():
    """UserEvent echoes its action's ActionID after the response; it reaches on_event (ami4 c1-8)."""
    wired = Wired()
    pending = wired.protocol.send_action(Action("UserEvent", [("UserEvent", "probe")]), 10)
    response, user_event = [ami_replay.retag(m, "t-1")
                            for m in _recorded("ami4_login_ping_events", "c1-8")]
    wired.feed([response, user_event])
    assert _result(pending) == response
    assert wired.events == [user_event] and wired.bad == []


def test_originate_response_event_is_not_taken_as_a_response():
    """OriginateResponse (Event with `Response: Failure` and the ActionID) goes to on_event
    after the Originate's own response (ami5_originate, orig-noext)."""
    wired = Wired()
    pending = wired.protocol.send_action(Action("Originate", [("Channel", "Local/9999@hotline/n"),
                                                              ("Async", "true")]), 10)
    recorded = [ami_replay.retag(m, "t-1") for m in _recorded("ami5_originate", "orig-noext")]
    assert [m.event or m.response for m in recorded] == ["Success", "OriginateResponse"]
    wired.feed(recorded)
    assert _result(pending)["Message"] == "Originate successfully queued"
    assert [m.event for m in wired.events] == ["OriginateResponse"]
    assert wired.events[0]["Reason"] == "0" and wired.bad == []


def test_unknown_action_id_is_counted_and_ignored():
    """Responses for no pending action (unknown or missing ActionID) are counted, nothing raises."""
    wired = Wired()
    wired.feed([Message([("Response", "Success"), ("ActionID", "nobody")]),
                Message([("Response", "Success")])])
    assert wired.bad == ["unknown_response", "unknown_response"] and wired.events == []


def test_garbage_and_truncated_blocks_are_counted():
    """A block without Event/Response and a truncated event are counted; the stream goes on."""
    wired = Wired()
    wired.protocol.dataReceived(b"Hello there\r\n\r\nFoo: bar\r\n\r\n"
                                b"Event: QueueCallerJoin\r\nQueue: inbound\r\nPosi\r\n\r\n"
                                b"\xff\xfe\x00\r\n\r\nEvent: FullyBooted\r\n\r\n")
    assert wired.bad == ["malformed_line", "no_type", "no_type", "malformed_line",
                         "malformed_line", "no_type"]
    assert [m.event for m in wired.events] == ["QueueCallerJoin", "FullyBooted"]
    assert wired.events[0]["Queue"] == "inbound" and "Position" not in wired.events[0]


def test_oversized_block_drops_the_connection():
    """A block over the size limit is counted as too_large and the connection is aborted."""
    wired = Wired()
    wired.protocol.dataReceived(b"Event: X\r\nData: " + b"a" * (1024 * 1024 + 10))
    assert wired.bad == ["too_large"]
    assert wired.transport.disconnecting


def test_timeout_fails_the_action_and_late_response_is_ignored():
    """No response within the timeout -> AmiTimeout; a late response is counted, not raised."""
    wired = Wired()
    pending = wired.protocol.send_action(Action("Ping"), timeout=5)
    wired.clock.advance(4.9)
    assert wired.protocol.pending_count == 1
    wired.clock.advance(0.2)
    assert _failure(pending).check(AmiTimeout)
    wired.feed([Message([("Response", "Success"), ("ActionID", "t-1"), ("Ping", "Pong")])])
    assert wired.bad == ["unknown_response"]


def test_connection_loss_fails_every_pending_action():
    """Pending actions (plain and list) fail with AmiConnectionLost; later sends write nothing."""
    wired = Wired()
    plain = wired.protocol.send_action(Action("Ping"), 10)
    listed = wired.protocol.send_list_action(Action("QueueStatus"), 10)
    wired.protocol.connectionLost(Failure(ConnectionLost()))
    assert _failure(plain).check(AmiConnectionLost)
    assert _failure(listed).check(AmiConnectionLost)
    assert wired.clock.getDelayedCalls() == []
    written = wired.transport.value()
    assert _failure(wired.protocol.send_action(Action("Ping"), 10)).check(AmiConnectionLost)
    assert wired.transport.value() == written


def test_connection_loss_before_banner_fails_banner_received():
    """A connection closed before the banner fails `banner_received` (login then gives up)."""
    wired = Wired(banner=False)
    wired.protocol.connectionLost(Failure(ConnectionLost()))
    assert _failure(wired.protocol.banner_received).check(AmiConnectionLost)


def test_cancelling_an_action_forgets_it():
    """Cancelling the Deferred of a pending action removes it and its timer."""
    wired = Wired()
    pending = wired.protocol.send_action(Action("Ping"), 10)
    pending.cancel()
    assert _failure(pending).check(CancelledError)
    assert wired.protocol.pending_count == 0 and wired.clock.getDelayedCalls() == []


def test_event_handler_exception_does_not_escape():
    """An on_event handler raising is counted as handler_error and later events still arrive."""
    wired = Wired()
    seen = []

    def handler(message):
        seen.append(message.event)
        if message.event == "QueueCallerJoin":
            raise RuntimeError("handler bug")

    wired.protocol.on_event = handler
    wired.feed(ami_replay.events("a_answered", "QueueCallerJoin", "AgentCalled"))
    assert seen == ["QueueCallerJoin", "AgentCalled", "AgentCalled"]
    assert wired.bad == ["handler_error"]


@pytest.mark.parametrize("seed", range(5))
def test_raw_capture_in_random_chunks_gives_the_same_events(seed):
    """ami9_pause_rna_incall's raw bytes fed in random chunks give the same events as one read."""
    data = ami_replay.raw_bytes("ami9_pause_rna_incall")
    whole = Wired(banner=False)
    whole.protocol.dataReceived(data)
    chunked = Wired(banner=False)
    rng = random.Random(seed)
    pos = 0
    while pos < len(data):
        size = rng.randint(1, 4096) if rng.random() < 0.7 else rng.randint(1, 8)
        chunked.protocol.dataReceived(data[pos:pos + size])
        pos += size
    assert chunked.events == whole.events
    assert len(whole.events) == sum(1 for m in ami_replay.raw_messages("ami9_pause_rna_incall")
                                    if m.event)
    assert chunked.protocol.banner == "Asterisk Call Manager/11.0.0"
    # Responses to the lab client's actions have no pending action here.
    assert set(chunked.bad) == {"unknown_response"}


def test_repeated_bad_data_is_logged_once_per_minute_and_counted_each_time():
    """issue 19 point 9: 1,001 responses with unknown ActionIDs made 1,001 log lines; now one
    line per reason and minute (with how many more came), and every one is counted."""
    from twisted.logger import globalLogPublisher
    from ccengine.ami.protocol import AmiProtocol
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    lines, bad = [], []

    def observer(event):
        if "bad incoming data" in str(event.get("log_format", "")):
            lines.append(event)
    globalLogPublisher.addObserver(observer)
    try:
        protocol = AmiProtocol(Clock())
        protocol.on_bad_message = lambda reason, detail: bad.append(reason)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
        for i in range(1001):
            protocol.dataReceived(b"Response: Success\r\nActionID: nobody-%d\r\n\r\n" % i)
    finally:
        globalLogPublisher.removeObserver(observer)
    assert len(bad) == 1001 and len(lines) == 1


def test_an_event_storm_is_handled_in_batches_with_the_socket_paused():
    """issue 19 point 7: a burst of 10,000 recorded QueueCallerJoin events is handled BATCH at
    a time, one reactor turn each (FastAGI's callers get the reactor in between); the socket
    is paused while a backlog waits, so TCP pushes back on Asterisk; order is kept."""
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    import ami_replay
    from ccengine.ami.protocol import AmiProtocol
    join = ami_replay.events("a_answered", "QueueCallerJoin")[0]
    seen = []
    clock = Clock()
    protocol = AmiProtocol(clock)
    protocol.on_event = lambda message: seen.append(message.get("Position"))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
    storm = b"".join(
        type(join)([(k, str(i) if k == "Position" else v) for k, v in join.items()]).to_bytes()
        for i in range(10_000))
    protocol.dataReceived(storm)
    # One batch now; the rest on later reactor turns (one delayed call at 0 s), socket paused.
    assert len(seen) == AmiProtocol.BATCH and transport.producerState == "paused"
    assert [c.getTime() for c in clock.getDelayedCalls()] == [clock.seconds()]
    clock.advance(0)            # task.Clock runs the turns that follow one another at once
    assert transport.producerState == "producing" and clock.getDelayedCalls() == []
    assert seen == [str(i) for i in range(10_000)]
