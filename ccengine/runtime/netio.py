"""Send short writes at once instead of on the reactor's next turn.

Twisted's TCP transport never sends in `write`: it buffers the bytes, registers the socket for
writing (an epoll_ctl) and sends them on the next iteration (`doWrite`, then another epoll_ctl
to unregister). For one short line per request/reply round trip (an AGI command, a Redis
script call) that was the largest single cost in the hotline profile (bench/README.md).
These protocols have one short write per round trip, so the kernel takes it at once; whatever
it does not take (a full buffer, an error) goes to `transport.write`, and from then on every
byte of that connection does, so Twisted's buffer keeps them in order. An error is left for
Twisted's own write to meet: it reports the connection lost as usual.
"""
from __future__ import annotations

import socket

from twisted.internet import tcp

__all__ = ["DirectWriter"]

# Plain TCP only (exact types): any other transport (TLS, a test's StringTransport) gets every
# byte through transport.write.
_PLAIN_TCP = (tcp.Server, tcp.Client)


class DirectWriter:
    """`write(data)` for one connection: the socket while Twisted's buffer is unused."""

    __slots__ = ("_transport", "_socket")

    def __init__(self, transport) -> None:
        self._transport = transport
        self._socket: socket.socket | None = (
            transport.getHandle() if type(transport) in _PLAIN_TCP else None)

    def write(self, data: bytes) -> None:
        sock, transport = self._socket, self._transport
        if sock is not None and transport.connected and not transport.disconnecting:
            try:
                sent = sock.send(data)
            except OSError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        self._socket = None
        transport.write(data)
