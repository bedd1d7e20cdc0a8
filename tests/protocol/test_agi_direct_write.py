"""FastAGIProtocol sends each command on the socket at once (not on the next reactor turn) and
falls back to Twisted's buffered write, in order, when the kernel does not take it all.

A real Twisted TCP transport (tcp.Server) over a socket pair, with MemoryReactor recording which
sockets are registered for writing; the environment and replies are agi1_suite's
(tests/fixtures/agi, copy of ../shared/asterisk/transcripts2)."""
from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor

from agi_harness import capture_dialogue
from ccengine.agi.protocol import FastAGIProtocol


class Host:
    """The protocol's factory side: only what FastAGIProtocol needs."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.env_timeout = 10.0
        self.started = []

    def session_started(self, protocol, env):
        self.started.append(env)

    def connection_opened(self, protocol):
        return True

    def connection_closed(self, protocol):
        pass

    def session_ended(self, protocol):
        pass

    def connection_aborted(self, protocol, kind):
        raise AssertionError(f"aborted: {kind}")


def connected_pair():
    ours, asterisk = socket.socketpair()
    ours.setblocking(False)
    asterisk.setblocking(False)
    reactor = MemoryReactor()
    protocol = FastAGIProtocol()
    protocol.factory = Host()
    transport = tcp.Server(ours, protocol, ("127.0.0.1", 40000), None, 1, reactor)
    protocol.makeConnection(transport)
    env, dialogue = capture_dialogue("agi1_suite")
    protocol.dataReceived(env)
    return protocol, transport, reactor, asterisk, dialogue


def drain(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def test_command_is_on_the_socket_before_the_reactor_runs():
    """The command's bytes can be read by Asterisk at once; the socket is never registered
    for writing."""
    protocol, transport, reactor, asterisk, dialogue = connected_pair()
    protocol.send(b"ANSWER\n", 10.0)
    assert drain(asterisk) == b"ANSWER\n"
    assert transport not in reactor.getWriters()


def test_full_socket_buffer_falls_back_to_twisted_in_order():
    """When the kernel takes only part of a command, the rest and every later command go
    through Twisted's write buffer, and Asterisk reads all bytes in order."""
    protocol, transport, reactor, asterisk, dialogue = connected_pair()
    filler = b"x" * 65536
    sent = b""
    while True:   # fill the socket's send buffer as a slow peer would
        try:
            sent += filler[:transport.socket.send(filler)]
        except BlockingIOError:
            break
    first = protocol.send(b"ANSWER\n", 10.0)
    assert transport in reactor.getWriters()
    received = drain(asterisk)
    transport.doWrite()
    received += drain(asterisk)
    protocol.dataReceived(b"200 result=0\n")
    assert first.called
    protocol.send(b"HANGUP\n", 10.0)
    assert transport in reactor.getWriters()   # once Twisted has bytes, it gets every byte
    transport.doWrite()
    received += drain(asterisk)
    assert received == sent + b"ANSWER\nHANGUP\n"
