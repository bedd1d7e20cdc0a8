"""The script lane's connection handling with a memory reactor and a test clock: handshake
order, pairing, the per-request deadline and the flush when no asyncio loop runs.

The Redis side is played by hand in RESP2 (redis.io protocol spec; no capture of Redis traffic
exists in ../shared). The same behaviours against a real redis-server are in
tests/integration/test_script_lane.py."""
from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock, StringTransport

from ccengine.store.resp import LaneUnavailable, RespError, ScriptLane, lane_target


def connected(lane: ScriptLane, reactor: MemoryReactorClock):
    """Complete the TCP connection the lane asked the reactor for; returns (protocol, wire)."""
    host, port, factory, _, _ = reactor.tcpClients[-1]
    protocol = factory.buildProtocol(None)
    wire = StringTransport()
    protocol.makeConnection(wire)
    return protocol, wire


def outcome(deferred) -> list:
    seen: list = []
    deferred.addBoth(seen.append)
    return seen


def test_auth_and_select_go_first_then_requests_pair_in_order():
    """Requests made while connecting wait; once connected AUTH and SELECT (from the URL) are
    written ahead of them, their replies are consumed, and each request gets its own reply."""
    reactor = MemoryReactorClock()
    lane = ScriptLane(reactor, lane_target("redis://:pw@127.0.0.1:6390/2"), timeout=2.0)
    first, second = outcome(lane.execute("GET", "a")), outcome(lane.execute("GET", "b"))
    assert reactor.tcpClients[0][:2] == ("127.0.0.1", 6390)
    protocol, wire = connected(lane, reactor)
    assert wire.value() == (b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n"
                            b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n")
    protocol.dataReceived(b"+OK\r\n+OK\r\n$2\r\nva\r\n$-")     # the last reply arrives split
    assert first == ["va"] and second == []
    protocol.dataReceived(b"1\r\n")
    assert second == [None]


def test_without_an_asyncio_loop_the_turns_requests_are_written_by_a_zero_delay_call():
    """Outside a running asyncio loop (another reactor, a test clock) the end-of-turn flush is
    a callLater(0): nothing is written until the clock runs it, then all requests at once."""
    reactor = MemoryReactorClock()
    lane = ScriptLane(reactor, lane_target("redis://127.0.0.1:6390/0"), timeout=2.0)
    outcome(lane.execute("PING"))
    protocol, wire = connected(lane, reactor)
    protocol.dataReceived(b"+PONG\r\n")
    wire.clear()
    results = [outcome(lane.execute("INCR", "n")) for _ in range(3)]
    assert wire.value() == b""
    reactor.advance(0)
    assert wire.value() == b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n" * 3
    protocol.dataReceived(b":1\r\n:2\r\n-ERR boom\r\n")
    assert results[0] == [1] and results[1] == [2]
    assert results[2][0].check(RespError)


def test_deadline_drops_the_connection_and_fails_every_request_on_it():
    """The oldest request's deadline passes: that request and the one behind it fail with
    LaneUnavailable and the connection is aborted, so their late replies can never be read;
    the next request opens a new connection."""
    reactor = MemoryReactorClock()
    lane = ScriptLane(reactor, lane_target("redis://127.0.0.1:6390/0"), timeout=2.0)
    first = outcome(lane.execute("GET", "a"))
    protocol, wire = connected(lane, reactor)
    reactor.advance(1.0)
    second = outcome(lane.execute("GET", "b"))
    reactor.advance(0)
    reactor.advance(1.0)
    assert first[0].check(LaneUnavailable) and second[0].check(LaneUnavailable)
    assert wire.disconnecting
    lane.execute("GET", "c")
    assert len(reactor.tcpClients) == 2


def test_a_reply_nobody_asked_for_drops_the_connection():
    """Redis never speaks first: an unsolicited reply means the pairing is lost."""
    reactor = MemoryReactorClock()
    lane = ScriptLane(reactor, lane_target("redis://127.0.0.1:6390/0"), timeout=2.0)
    first = outcome(lane.execute("PING"))
    protocol, wire = connected(lane, reactor)
    protocol.dataReceived(b"+PONG\r\n+EXTRA\r\n")
    assert first == ["PONG"]
    assert wire.disconnecting
