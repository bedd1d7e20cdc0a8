"""FastAGIProtocol framing, replaying the real bytes of tests/fixtures/agi (copies of
../shared/asterisk/transcripts2/agi1_*, agi2_*, agi3_*), with StringTransport and task.Clock."""
from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from agi_harness import AGI_FIXTURES, capture_dialogue
from ccengine.agi.protocol import (
    MAX_ENV_LINES, MAX_LINE, AgiBusy, AgiConnectionLost, AgiTimeout, FastAGIProtocol,
)
from ccengine.agi.wire import AgiDeadChannel, AgiProtocolError, AgiReply, AgiUsageError


class Host:
    """The protocol's factory side, recording what it is told."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.env_timeout = 10.0
        self.started = []
        self.ended = []
        self.aborted = []

    def session_started(self, protocol, env):
        self.started.append(env)

    def connection_opened(self, protocol):
        return True

    def connection_closed(self, protocol):
        pass

    def session_ended(self, protocol):
        self.ended.append(protocol)

    def connection_aborted(self, protocol, kind):
        self.aborted.append(kind)


def connect(host: Host | None = None):
    host = host or Host()
    protocol = FastAGIProtocol()
    protocol.factory = host
    transport = StringTransport()
    protocol.makeConnection(transport)
    return host, protocol, transport


def open_session(name: str = "agi1_suite"):
    host, protocol, transport = connect()
    env, dialogue = capture_dialogue(name)
    protocol.dataReceived(env)
    return host, protocol, transport, dialogue


def results(deferred):
    out = []
    deferred.addBoth(out.append)
    return out


def test_environment_from_real_bytes_starts_session_once():
    """The agi3_env_args environment, even fed byte by byte, starts exactly one session."""
    host, protocol, _ = connect()
    data = (AGI_FIXTURES / "agi3_env_args.from_asterisk.bin").read_bytes()
    env_block = data[:data.index(b"\n\n") + 2]
    for i in range(len(env_block)):
        protocol.dataReceived(env_block[i:i + 1])
    assert len(host.started) == 1
    assert host.started[0].args == ("arg1", "arg two")
    # The environment's timer is left armed for the first command, but with the session
    # started it no longer aborts anything, and it leaves nothing behind once it passed.
    host.clock.advance(host.env_timeout + 1)
    assert host.aborted == [] and not protocol.closing
    assert host.clock.getDelayedCalls() == []


def test_commands_and_replies_pair_in_order_over_whole_suite():
    """Replaying agi1_suite command by command pairs every reply with its command."""
    host, protocol, transport, dialogue = open_session("agi1_suite")
    seen = []
    for command, received in dialogue:
        if command.endswith(b"\r"):
            continue  # the CR LF probe of AGI note 2; our send() refuses \r
        out = results(protocol.send(command + b"\n", 10))
        protocol.dataReceived(received)
        seen.append(out[0])
        assert not protocol.busy
    assert transport.value() == b"".join(c + b"\n" for c, _ in dialogue if not c.endswith(b"\r"))
    kinds = [type(r.value).__name__ if isinstance(r, Failure) else r.result for r in seen]
    assert kinds.count("AgiUsageError") == 3 and kinds.count("AgiInvalidCommand") == 1
    assert kinds.count("AgiDeadChannel") == 1
    assert seen[-1] == AgiReply(200, "1", "caller")
    assert protocol.hung_up


def test_usage_error_carries_xml_usage_text():
    """A 520 multi-line reply fails the command with the usage text (agi1_suite `GET VARIABLE`)."""
    _, protocol, _, dialogue = open_session()
    received = dict(dialogue)[b"GET VARIABLE"]
    out = results(protocol.send(b"GET VARIABLE\n", 10))
    protocol.dataReceived(received)
    assert out[0].check(AgiUsageError)
    assert "<literal>0</literal>" in out[0].value.usage


def test_second_send_while_pending_raises_busy():
    """Only one command may be in flight: a second send raises AgiBusy and writes nothing."""
    _, protocol, transport, _ = open_session()
    protocol.send(b"ANSWER\n", 10)
    with pytest.raises(AgiBusy):
        protocol.send(b"NOOP\n", 10)
    assert transport.value() == b"ANSWER\n"


@pytest.mark.parametrize("line", [b"NOOP", b"NOOP\r\n", b"NOOP\nHANGUP\n", b"A\n\n"])
def test_send_refuses_anything_but_one_lf_terminated_line(line):
    """send() refuses lines without exactly one trailing LF or with CR (AGI note 2)."""
    _, protocol, transport, _ = open_session()
    with pytest.raises(ValueError):
        protocol.send(line, 10)
    assert transport.value() == b""


def test_command_timeout_fails_and_closes():
    """No reply within the timeout: AgiTimeout, the connection is closed, later sends fail."""
    host, protocol, transport, _ = open_session()
    out = results(protocol.send(b"ANSWER\n", 5))
    host.clock.advance(4.9)
    assert out == []
    host.clock.advance(0.2)
    assert out[0].check(AgiTimeout)
    assert transport.disconnecting and host.aborted == ["timeout"]
    assert results(protocol.send(b"NOOP\n", 5))[0].check(AgiConnectionLost)
    assert host.clock.getDelayedCalls() == []


def test_hangup_line_after_minus_one_reply():
    """agi2_hangup_stream: -1 endpos=20160 completes STREAM FILE; HANGUP then sets hung_up."""
    _, protocol, transport, dialogue = open_session("agi2_hangup_stream")
    notified = []
    protocol.on_hangup.append(lambda: notified.append(True))
    protocol.send(b"ANSWER\n", 10)
    protocol.dataReceived(dialogue[0][1])
    out = results(protocol.send(b'STREAM FILE demo-congrats ""\n', 10))
    reply, hangup = dialogue[1][1].split(b"\n")[:2]
    protocol.dataReceived(reply + b"\n")
    assert out == [AgiReply(200, "-1", None, 20160)] and not protocol.hung_up
    protocol.dataReceived(hangup + b"\n")
    assert protocol.hung_up and notified == [True]
    out = results(protocol.send(b"CHANNEL STATUS\n", 10))
    protocol.dataReceived(dialogue[2][1])
    assert out[0].check(AgiDeadChannel)


def test_hangup_while_idle_then_commands_still_answered():
    """agi2_hangup_idle: an unsolicited HANGUP while idle; NOOP still gets its 200."""
    _, protocol, _, dialogue = open_session("agi2_hangup_idle")
    results(protocol.send(b"ANSWER\n", 10))
    protocol.dataReceived(dialogue[0][1])  # `200 result=0\n` then, 2.5 s later, `HANGUP\n`
    assert protocol.hung_up and not protocol.busy
    out = results(protocol.send(b"NOOP\n", 10))
    protocol.dataReceived(dialogue[1][1])
    assert out == [AgiReply(200, "0")]


def test_unsolicited_reply_closes():
    """A reply with no command in flight breaks pairing: the connection is closed."""
    host, protocol, transport, _ = open_session()
    protocol.dataReceived(b"200 result=0\n")
    assert transport.disconnecting and host.aborted == ["unsolicited_reply"]


def test_garbage_reply_fails_command_and_closes():
    """A line outside the grammar fails the pending command with AgiProtocolError and closes."""
    host, protocol, transport, _ = open_session()
    out = results(protocol.send(b"NOOP\n", 10))
    protocol.dataReceived(b"hello there\n200 result=0\n")
    assert out[0].check(AgiProtocolError)
    assert transport.disconnecting and host.aborted == ["protocol"]


def test_overlong_line_closes():
    """A line over 8 KiB (complete or not) closes the connection."""
    host, protocol, transport = connect()
    protocol.dataReceived(b"agi_callerid: " + b"x" * MAX_LINE)
    assert transport.disconnecting and host.aborted == ["line_too_long"]
    assert host.started == [] and host.clock.getDelayedCalls() == []


def test_oversized_environment_closes():
    """More than 200 environment lines close the connection before any session starts."""
    host, protocol, transport = connect()
    protocol.dataReceived(b"agi_x: y\n" * (MAX_ENV_LINES + 1))
    assert transport.disconnecting and host.aborted == ["env_too_large"] and host.started == []


def test_silent_client_dropped_after_env_timeout():
    """A client that connects and sends nothing is dropped after env_timeout."""
    host, protocol, transport = connect()
    host.clock.advance(9.9)
    assert not transport.disconnecting
    host.clock.advance(0.2)
    assert transport.disconnecting and host.aborted == ["env_timeout"]
    assert host.clock.getDelayedCalls() == []


def test_health_check_connect_close_leaves_nothing():
    """Connect then close before any environment: no session, no timer left."""
    host, protocol, _ = connect()
    protocol.connectionLost(Failure(ConnectionDone()))
    assert host.clock.getDelayedCalls() == []
    assert host.started == [] and host.ended == [] and host.aborted == []


def test_connection_lost_fails_pending_and_reports_end():
    """Connection loss fails the command in flight with AgiConnectionLost and ends the session."""
    host, protocol, _, _ = open_session()
    out = results(protocol.send(b"ANSWER\n", 10))
    protocol.connectionLost(Failure(ConnectionDone()))
    assert out[0].check(AgiConnectionLost)
    assert host.ended == [protocol] and host.clock.getDelayedCalls() == []


def test_busy_and_idle_since_follow_the_command_in_flight():
    """`busy` while a command waits for its reply; `idle_since` (read by the session watchdog)
    is the session start, then the moment the reply arrived."""
    host, protocol, _, _ = open_session()
    started = host.clock.seconds()
    assert protocol.idle_since == started and not protocol.busy
    host.clock.advance(1.5)
    protocol.send(b"NOOP\n", 10)
    assert protocol.busy
    host.clock.advance(0.25)
    protocol.dataReceived(b"200 result=0\n")
    assert not protocol.busy and protocol.idle_since == started + 1.75


def test_cancelling_a_command_closes_the_session():
    """Cancelling the Deferred of a command in flight closes (a late reply could not be paired)."""
    host, protocol, transport, _ = open_session()
    d = protocol.send(b"ANSWER\n", 10)
    d.addErrback(lambda f: None)
    d.cancel()
    assert transport.disconnecting and not protocol.busy
    assert host.clock.getDelayedCalls() == []


def test_crlf_from_asterisk_is_tolerated():
    """A trailing CR on a reply line is stripped defensively (Asterisk itself sends LF only)."""
    _, protocol, _, _ = open_session()
    out = results(protocol.send(b"NOOP\n", 10))
    protocol.dataReceived(b"200 result=0\r\n")
    assert out == [AgiReply(200, "0")]
