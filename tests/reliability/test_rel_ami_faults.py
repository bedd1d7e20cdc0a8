"""Issue 8, cases 4 and 10: broken AMI input and AMI connection loss.

A real AmiClient on a fake endpoint and task.Clock (tests/ami_replay.py ClientHarness) with the
queue statistics consumer (ccengine/stats) subscribed. Events are recorded Asterisk 22 events
from tests/fixtures/ami (copies of ../shared/asterisk/transcripts{,2}: a_answered,
ami4_login_ping_events, ami*_*.raw), damaged on purpose.
"""
from __future__ import annotations

import pytest
from twisted.python.failure import Failure

import ami_replay
from ami_replay import ClientHarness
from ccengine.ami import AmiConnectionLost, Message
from ccengine.config import load_config
from ccengine.queues.feed import QueueFeed
from ccengine.queues.picture import QueuePicture
from ccengine.stats import QueueStats

QUEUES = dict(load_config(None).queues)
RAW_CAPTURES = ["ami4_login_ping_events", "ami5_originate", "ami6_queue_priority_withdraw",
                "ami7_queue_exit_context", "ami8c_atxfer", "ami8d_blindtransfer",
                "ami9_pause_rna_incall", "ami10_restart"]


def harness_with_stats() -> tuple[ClientHarness, QueueStats]:
    """The statistics on the engine's queue feed over a real AmiClient (ccengine/queues/)."""
    harness = ClientHarness()
    stats = QueueStats.build(harness.registry, QUEUES, harness.clock)
    feed = QueueFeed(harness.client, QueuePicture(harness.clock))
    feed.on(stats.consumer.EVENTS, stats.consumer.handle)
    feed.on_status(stats.consumer.resync)
    harness.login(with_events=False)
    return harness, stats


def changed(message: Message, drop: tuple[str, ...] = (), **values: str) -> Message:
    """A recorded message with headers removed or replaced (names compared case-insensitively)."""
    lowered = {k.lower(): v for k, v in values.items()}
    return Message([(k, lowered.get(k.lower(), v)) for k, v in message.items()
                    if k.lower() not in {d.lower() for d in drop}])


def answered_call() -> list[Message]:
    return ami_replay.events("a_answered", "QueueCallerJoin", "QueueCallerLeave",
                             "AgentConnect", "AgentComplete")


def ignored(harness: ClientHarness, reason: str) -> float:
    return harness.sample("ccengine_stats_ignored_events_total", reason=reason)


def test_case4_damaged_events_are_counted_and_the_state_stays_consistent():
    """Case 4: truncated, out-of-order, unknown-queue, missing-header and untyped AMI input goes
    through the real client without an exception; each kind is counted, and a correct call
    afterwards is measured exactly as if nothing had happened."""
    harness, stats = harness_with_stats()
    join, leave, connect, complete = answered_call()
    join_bytes = join.to_bytes()
    damaged = [
        join_bytes[:len(join_bytes) // 3] + b"\r\n\r\n",                 # truncated block
        changed(connect, Uniqueid="never-joined-1"),                      # out of order
        changed(leave, Uniqueid="never-joined-2"),                        # unknown channel
        changed(join, Queue="no-such-queue"),                             # unknown queue
        changed(join, drop=("Uniqueid",)),                                # missing header
        changed(connect, Uniqueid="never-joined-3", HoldTime="soon"),     # bad value
        b"Event: QueueCallerJoin\r\nthis line has no colon\r\n\r\n",      # malformed line
        b"Queue: complaint\r\nUniqueid: x\r\n\r\n",                       # neither event nor response
        b"Response: Success\r\nActionID: cc1-999\r\n\r\n",                # answer to nothing
    ]
    harness.receive(damaged)
    assert harness.client.connected
    assert ignored(harness, "join_not_seen") == 2
    assert ignored(harness, "unknown_queue") == 1
    assert ignored(harness, "missing_header") == 3   # truncated, no Uniqueid, malformed
    assert ignored(harness, "bad_value") == 1
    # the truncated block ends inside a line (`Chan...`, no colon) and the colon-less line
    assert harness.sample("ccengine_ami_bad_events_total", server="asterisk", reason="malformed_line") == 2
    for reason in ("no_type", "unknown_response"):
        assert harness.sample("ccengine_ami_bad_events_total", server="asterisk", reason=reason) == 1, reason
    assert harness.sample("ccengine_ami_bad_events_total", server="asterisk", reason="handler_error") == 0
    assert harness.sample("ccengine_queue_offered_total", queue="no-such-queue") is None
    assert stats.consumer.tracked == 0 and len(stats.waiting) == 0

    answered_before = harness.sample("ccengine_queue_answered_total", queue="complaint")
    harness.receive(answered_call())
    assert harness.sample("ccengine_queue_offered_total", queue="complaint") == 1
    assert harness.sample("ccengine_queue_answered_total", queue="complaint") == \
        answered_before + 1
    assert harness.sample("ccengine_queue_exits_total", queue="complaint",
                          reason="answered") == 2    # the out-of-order connect, then this call
    assert stats.consumer.tracked == 0 and len(stats.waiting) == 0


@pytest.mark.parametrize("capture", RAW_CAPTURES)
@pytest.mark.parametrize("cut", [0.37, 0.81])
def test_case4_a_stream_cut_mid_block_then_replayed_whole_raises_nothing(capture, cut):
    """Case 4: a recorded stream cut mid-block (connection lost), then replayed whole on the
    next connection in 7-byte reads, reaches every subscriber without one handler error."""
    harness, stats = harness_with_stats()
    seen: list[str] = []
    harness.client.subscribe("*", lambda m: seen.append(m.event))
    data = ami_replay.raw_bytes(capture)
    body = data[data.index(b"\r\n") + 2:]       # the banner was already received by login()
    harness.receive(body[:int(len(body) * cut)])
    harness.close()
    harness.clock.advance(0.5)
    harness.login(with_events=False)
    first_seen = len(seen)
    ami_replay.feed_protocol(harness.protocol, body, chunk_size=7)
    events = [m for m in ami_replay.raw_messages(capture) if m.event is not None]
    assert len(seen) - first_seen == len(events)
    assert harness.sample("ccengine_ami_bad_events_total", server="asterisk", reason="handler_error") == 0


# --- case 10: AMI connection drops, Asterisk restarts -----------------------------------------

def test_case10_drop_fails_the_pending_originate_and_never_resends_it():
    """Case 10: an Originate pending when the connection drops fails with AmiConnectionLost;
    the client reconnects with back-off (0.5 s, 1 s, 2 s with refused attempts), logs in,
    runs the resync callbacks, and the Originate is not written again."""
    harness, stats = harness_with_stats()
    resyncs: list[int] = []
    harness.client.on_connected(lambda: resyncs.append(len(harness.endpoint.connections)))
    outcome: list = []
    harness.client.send_action("Originate", Channel="Local/13800000001@ccengine-callback",
                               Async="true").addBoth(outcome.append)
    harness.close()
    assert isinstance(outcome[0], Failure) and outcome[0].check(AmiConnectionLost)
    assert not harness.client.connected
    assert harness.sample("ccengine_ami_connected", server="asterisk") == 0

    harness.endpoint.refuse = 2
    harness.clock.advance(0.49)
    assert len(harness.endpoint.connections) == 1
    harness.clock.advance(0.01)                 # attempt 1 (refused)
    harness.clock.advance(1.0)                  # attempt 2 (refused)
    assert len(harness.endpoint.connections) == 1
    harness.clock.advance(1.99)
    assert len(harness.endpoint.connections) == 1
    harness.clock.advance(0.01)                 # attempt 3 connects
    assert len(harness.endpoint.connections) == 2
    harness.login(with_events=False)
    assert harness.client.connected and resyncs == [2]
    actions = [m["Action"] for m in harness.written()]
    assert actions == ["Login", "QueueStatus"]
    assert harness.sample("ccengine_ami_reconnects_total", server="asterisk") == 1
    assert harness.sample("ccengine_ami_connected", server="asterisk") == 1


def test_case10_actions_while_disconnected_fail_fast_and_are_not_queued():
    """Case 10: an action asked for while the connection is down fails at once and is not
    written after the reconnect (no blind re-send, hence no duplicate Originate)."""
    harness, _ = harness_with_stats()
    harness.close()
    failed: list = []
    harness.client.send_action("Originate", Channel="Local/1@x").addErrback(failed.append)
    assert len(failed) == 1
    harness.clock.advance(0.5)
    harness.login(with_events=False)
    # the login and the queue feed's one QueueStatus; never the Originate
    assert [m["Action"] for m in harness.written()] == ["Login", "QueueStatus"]
