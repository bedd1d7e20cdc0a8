"""issue 19 point 4: what one FastAGI connection can make the engine hold is bounded."""
from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from agi_harness import agi_factory
from ccengine.agi import wire
from ccengine.agi.protocol import MAX_ENV_BYTES
from ccengine.agi.wire import AgiProtocolError, ReplyParser


def connect(factory, host="127.0.0.1"):
    protocol = factory.buildProtocol(IPv4Address("TCP", host, 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
    protocol.makeConnection(transport)
    return protocol, transport


def test_an_environment_larger_than_16_kib_is_refused_before_it_ends():
    """199 lines of 8 KB without the blank line used to be held for the 10 s env timeout
    (1.6 MB per connection); the connection is now closed once 16 KiB are in."""
    factory, _, registry = agi_factory({})
    protocol, transport = connect(factory)
    line = b"agi_junk: " + b"x" * 8000 + b"\n"
    sent = 0
    while not transport.disconnecting and sent < 199:
        protocol.dataReceived(line)
        sent += 1
    assert transport.disconnecting and sent * len(line) <= MAX_ENV_BYTES + len(line)
    assert registry.get_sample_value("ccengine_agi_errors_total", {"kind": "env_too_large"}) == 1


def test_a_usage_reply_is_bounded_and_junk_replies_never_enter_the_cache():
    parser = ReplyParser()
    assert parser.feed(b"520-Invalid command syntax.  Proper usage follows:") == []
    out = []
    for _ in range(190):
        out += parser.feed(b"y" * 8000)
        if out:
            break
    assert isinstance(out[0], AgiProtocolError) and len(out) == 1
    for i in range(600):
        parser.feed(b"200 result=" + str(i).encode() + b"z" * 8000)
    assert parser._plain == {}                            # long lines are never cached
    for i in range(600):                                  # short ones: at most the bound ...
        parser.feed(b"200 result=0 endpos=%d" % i)
    assert len(parser._plain) == wire._MAX_PLAIN_REPLIES
    other = ReplyParser()                                 # ... and only on this connection
    assert other._plain == {}
    common = other.feed(b"200 result=1")[0]
    assert common is wire._COMMON_REPLIES[b"200 result=1"]


def test_connections_over_the_caps_are_closed_and_counted():
    factory, _, registry = agi_factory({}, max_connections=3, max_connections_per_source=2)
    a1, t1 = connect(factory, "10.0.0.1")
    a2, t2 = connect(factory, "10.0.0.1")
    a3, t3 = connect(factory, "10.0.0.1")          # third from one source: refused
    b1, u1 = connect(factory, "10.0.0.2")
    b2, u2 = connect(factory, "10.0.0.2")          # fourth in all: refused
    assert [t.disconnecting or t.disconnected for t in (t1, t2, t3, u1, u2)] == \
        [False, False, True, False, True]
    assert registry.get_sample_value("ccengine_agi_errors_total",
                                     {"kind": "too_many_from_source"}) == 1
    assert registry.get_sample_value("ccengine_agi_errors_total",
                                     {"kind": "too_many_connections"}) == 1
    a1.connectionLost()
    again, t4 = connect(factory, "10.0.0.1")       # a closed one frees its place
    assert not t4.disconnecting
