"""The script lane: Lua scripts on a call's critical path over one pipelined Twisted connection.

A routed call runs two scripts (recognition, then the call record). Through redis-py's asyncio
client each one cost CPU in redis-py's command packing, connection pool, retry wrapper,
stream reader, and the asyncio Task and Deferred around them, a large share of the hotline's
CPU (figures in bench/README.md). Here one Twisted protocol keeps a single connection, writes
each command at once (ccengine/runtime/netio.py) and pairs replies with requests in order (Redis
answers in order), so a script costs a few microseconds plus the round trip.

Only what the lane needs: RESP2 replies (redis-server's default; no HELLO is sent), AUTH and
SELECT from the URL, parsed by redis-py's own `parse_url`. Everything else in the engine stays
on redis-py (store/base.py); so do URLs the lane does not speak (rediss://, options).

Faults: every request has a deadline (the connection's timeout). Replies come in order, so
only the oldest request's deadline is armed (ccengine/runtime/timers.py). When it passes, or the
connection fails, the connection is dropped and every request on it fails: a late reply can
never be paired with a later request. The next request connects again.
"""
from __future__ import annotations

from collections import deque
from typing import Any
from collections.abc import Callable

from redis.asyncio.connection import parse_url
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint, ITCPTransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from ccengine.runtime.netio import DirectWriter
from ccengine.runtime.timers import Deadline

__all__ = ["RespError", "LaneUnavailable", "ScriptLane", "encode", "lane_target"]

# A bulk reply larger than this is not one of ours: the stream is treated as broken.
MAX_BULK = 64 * 1024 * 1024


class RespError(Exception):
    """Redis answered with an error reply (`-ERR ...`, `-NOSCRIPT ...`)."""


class LaneUnavailable(Exception):
    """No reply: timeout, connection refused or lost, or a reply that cannot be parsed."""


class _Incomplete(Exception):
    pass


def encode(args: tuple) -> bytes:
    """A command as a RESP array of bulk strings (str as UTF-8, int/float via repr), exactly
    as redis-py packs it. Text is assembled as str and encoded once: the record save has ~25
    arguments, and per-argument bytes formatting was a visible share of the hotline profile."""
    out = [f"*{len(args)}\r\n"]
    for arg in args:
        kind = type(arg)
        if kind is str:
            size = len(arg) if arg.isascii() else len(arg.encode())
            out.append(f"${size}\r\n{arg}\r\n")
        elif kind is int or kind is float:
            text = repr(arg)
            out.append(f"${len(text)}\r\n{text}\r\n")
        else:
            return _encode_any(args)
    return "".join(out).encode()


def _encode_any(args: tuple) -> bytes:
    """`encode` for arguments that are not all str/int/float (bytes, subclasses)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _parse(buf: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 reply at `pos`: (value, next position); raises _Incomplete or ValueError."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line, pos = buf[pos], buf[pos + 1:end], end + 2
    if kind == 36:  # $ bulk string
        size = int(line)
        if size < 0:
            return None, pos
        if size > MAX_BULK:
            raise ValueError(f"bulk reply of {size} bytes")
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return buf[pos:pos + size].decode("utf-8", "replace"), pos + size + 2
    if kind == 58:  # : integer
        return int(line), pos
    if kind == 42:  # * array
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 43:  # + simple string
        return line.decode("utf-8", "replace"), pos
    if kind == 45:  # - error
        return RespError(line.decode("utf-8", "replace")), pos
    raise ValueError(f"not a RESP2 reply: {buf[pos - len(line) - 3:end][:40]!r}")


def lane_target(url: str) -> dict[str, Any] | None:
    """Connection settings for the lane from a Redis URL, or None when the lane does not speak
    it (TLS, socket options); the caller then keeps using redis-py for scripts."""
    settings: dict[str, Any] = dict(parse_url(url))
    unix = settings.pop("connection_class", None)
    if unix is not None and "path" not in settings:
        return None  # rediss:// (TLS)
    known = {"host", "port", "db", "username", "password", "path"}
    if set(settings) - known:
        return None
    return settings


def _soon_for(reactor: Any) -> Callable[[Callable[[], None]], Any]:
    """How to run something once the current reactor turn is done; the result of calling it
    has `cancel()`.

    On the asyncio reactor (the engine's) that is its loop's call_soon: Twisted's callLater(0)
    there re-schedules the reactor's own asyncio timer twice per use and walks its timer heap,
    which cost more than the write it saves (bench/README.md). AsyncioSelectorReactor keeps
    its loop in `_asyncioEventloop` (Twisted has no public accessor); any other reactor or a
    test clock gets callLater(0)."""
    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is not None:
        return loop.call_soon
    return lambda func: reactor.callLater(0, func)


class _RespProtocol(Protocol):
    transport: ITCPTransport          # set by Twisted before connectionMade (TCP or unix)
    writer: DirectWriter              # made in connectionMade

    def __init__(self, lane: ScriptLane) -> None:
        self.lane = lane
        self._buffer = b""

    def connectionMade(self) -> None:
        self.writer = DirectWriter(self.transport)
        if ITCPTransport.providedBy(self.transport):
            # Requests are pipelined: with Nagle's algorithm a request written while the
            # previous one is unacknowledged waits for Redis's reply or the kernel's delayed
            # ACK (up to 40 ms) before it leaves. redis-py and redis-server set it too.
            self.transport.setTcpNoDelay(True)

    def dataReceived(self, data: bytes) -> None:
        buf = self._buffer + data if self._buffer else data
        pos, size = 0, len(buf)
        while pos < size:
            try:
                value, pos = _parse(buf, pos)
            except _Incomplete:
                break
            except ValueError as exc:
                self.lane._broken(self, f"unreadable reply: {exc}")
                return
            if not self.lane._reply(self, value):
                return
        self._buffer = buf[pos:]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lane._lost(self, f"connection lost: {reason.getErrorMessage()}")


class _Request:
    __slots__ = ("deferred", "deadline", "internal")

    def __init__(self, deferred: Deferred | None, deadline: float, internal: bool) -> None:
        self.deferred = deferred
        self.deadline = deadline
        self.internal = internal  # AUTH / SELECT: a failure drops the connection


class ScriptLane:
    """One pipelined connection; `execute(*args)` fires with the decoded reply.

    Fails with RespError for an error reply and LaneUnavailable when there is no reply."""

    def __init__(self, reactor: Any, target: dict, timeout: float) -> None:
        self.reactor = reactor
        self.timeout = timeout
        self.target = target
        self._protocol: _RespProtocol | None = None
        self._connecting = False
        self._unsent: list[bytes] = []      # written at the end of the turn, or once connected
        self._flush: Any = None             # the scheduled call that writes them (_soon)
        self._requests: deque[_Request] = deque()   # oldest first, sent or not
        self._deadline = Deadline(reactor, self._timed_out)
        self._soon = _soon_for(reactor)

    def execute(self, *args: Any) -> Deferred:
        deferred: Deferred[Any] = Deferred()
        self._unsent.append(encode(args))
        self._add(_Request(deferred, self.reactor.seconds() + self.timeout, False))
        if self._protocol is not None:
            if self._flush is None:
                # Requests made in this reactor turn (by every call in progress) leave in one
                # write and their replies come back in one read (bench/README.md).
                self._flush = self._soon(self._write_unsent)
        elif not self._connecting:
            self._connect()
        return deferred

    def _write_unsent(self) -> None:
        self._flush = None
        if self._protocol is not None and self._unsent:
            data, self._unsent = b"".join(self._unsent), []
            self._protocol.writer.write(data)

    def close(self) -> None:
        """Drop the connection; requests in flight fail with LaneUnavailable."""
        self._fail_all("lane closed")
        self._deadline.stop()

    # --- connection -------------------------------------------------------------------
    def _connect(self) -> None:
        self._connecting = True
        t = self.target
        endpoint: IStreamClientEndpoint
        if "path" in t:
            endpoint = UNIXClientEndpoint(self.reactor, t["path"], timeout=self.timeout)
        else:
            host = t.get("host", "localhost")
            cls = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
            endpoint = cls(self.reactor, host, t.get("port", 6379), timeout=self.timeout)
        handshake = []
        if t.get("password"):
            handshake.append(("AUTH", t["username"], t["password"]) if t.get("username")
                             else ("AUTH", t["password"]))
        if t.get("db"):
            handshake.append(("SELECT", t["db"]))
        endpoint.connect(Factory.forProtocol(lambda: _RespProtocol(self))).addCallbacks(
            lambda protocol: self._connected(protocol, handshake), self._connect_failed)

    def _connected(self, protocol: _RespProtocol, handshake: list[tuple]) -> None:
        self._connecting = False
        if not self._requests:
            protocol.transport.loseConnection()  # everything timed out meanwhile
            return
        self._protocol = protocol
        # The handshake's replies come first: they go ahead of the waiting requests.
        deadline = self.reactor.seconds() + self.timeout
        for _ in handshake:
            self._requests.appendleft(_Request(None, deadline, True))
        data = b"".join([encode(cmd) for cmd in handshake] + self._unsent)
        self._unsent = []
        protocol.writer.write(data)

    def _connect_failed(self, failure: Failure) -> None:
        self._connecting = False
        self._fail_all(f"cannot connect: {failure.getErrorMessage()}")

    # --- replies ----------------------------------------------------------------------
    def _reply(self, protocol: _RespProtocol, value: Any) -> bool:
        """Pair a reply with the oldest request; False when the connection was dropped."""
        if protocol is not self._protocol or not self._requests:
            self._broken(protocol, "a reply nobody asked for")
            return False
        request = self._requests.popleft()
        self._arm()
        if request.internal:
            if isinstance(value, RespError):
                self._broken(protocol, f"handshake refused: {value}")
                return False
        elif request.deferred is None or request.deferred.called:
            pass  # cancelled by its caller; the reply still had to be consumed
        elif isinstance(value, RespError):
            request.deferred.errback(value)
        else:
            request.deferred.callback(value)
        return True

    def _broken(self, protocol: _RespProtocol, why: str) -> None:
        if protocol is self._protocol:
            self._fail_all(why)
        else:
            protocol.transport.abortConnection()

    def _lost(self, protocol: _RespProtocol, why: str) -> None:
        if protocol is self._protocol:
            self._fail_all(why)

    def _timed_out(self) -> None:
        self._fail_all(f"no reply within {self.timeout} s")

    # --- requests ---------------------------------------------------------------------
    def _add(self, request: _Request) -> None:
        self._requests.append(request)
        if len(self._requests) == 1:
            self._deadline.set(self.timeout)

    def _arm(self) -> None:
        if self._requests:
            self._deadline.set(max(0.0, self._requests[0].deadline - self.reactor.seconds()))
        else:
            self._deadline.clear()

    def _fail_all(self, why: str) -> None:
        protocol, self._protocol = self._protocol, None
        requests, self._requests = self._requests, deque()
        self._unsent = []
        if self._flush is not None:
            self._flush.cancel()
        self._flush = None
        self._deadline.clear()
        if protocol is not None:
            protocol.transport.abortConnection()
        for request in requests:
            if request.deferred is not None and not request.deferred.called:
                request.deferred.errback(LaneUnavailable(why))
