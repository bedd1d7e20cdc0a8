"""FastAGI framing: read the environment, then one command at a time, replies paired in order.

The protocol only frames and dispatches; it knows nothing about calls. Its factory (see
`SessionHost`) supplies the clock and receives the session.
"""
from __future__ import annotations

from typing import Protocol as TypingProtocol
from collections.abc import Callable
from functools import partial

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from ccengine.runtime.netio import DirectWriter
from ccengine.runtime.timers import NO_DEADLINE, Deadline
from ccengine.agi.wire import (
    HANGUP, AgiEnvironment, AgiError, AgiProtocolError, AgiReply, ReplyParser, parse_environment,
)

__all__ = ["FastAGIProtocol", "SessionHost", "AgiTimeout", "AgiBusy", "AgiConnectionLost"]

MAX_LINE = 8 * 1024
MAX_ENV_LINES = 200
# The whole environment block. Asterisk's is well under 1 KiB (agi3_env_utf8_callerid: 576
# bytes with a UTF-8 caller name; res_agi.c setup_env() writes about 25 short lines plus the
# AGI() arguments), so 16 KiB leaves room for long arguments and bounds what an idle
# connection can make the engine hold (200 lines of 8 KiB would be 1.6 MB).
MAX_ENV_BYTES = 16 * 1024


class AgiTimeout(AgiError):
    """No reply within the command's timeout; the session is closed (pairing is lost)."""


class AgiBusy(AgiError):
    """A command was sent while another one still waits for its reply."""


class AgiConnectionLost(AgiError):
    """The connection closed (or is closing) before the reply arrived."""


class SessionHost(TypingProtocol):
    """What FastAGIProtocol needs from its factory."""

    clock: IReactorTime
    env_timeout: float

    def session_started(self, protocol: FastAGIProtocol, env: AgiEnvironment) -> None: ...

    def session_ended(self, protocol: FastAGIProtocol) -> None: ...

    def connection_aborted(self, protocol: FastAGIProtocol, kind: str) -> None: ...

    def connection_opened(self, protocol: FastAGIProtocol) -> bool: ...

    def connection_closed(self, protocol: FastAGIProtocol) -> None: ...


class _Command:
    """One command in flight: its line and its Deferred."""

    __slots__ = ("line", "deferred")

    def __init__(self, line: bytes, deferred: Deferred) -> None:
        self.line = line
        self.deferred = deferred


class FastAGIProtocol(Protocol):
    factory: SessionHost
    transport: ITCPTransport          # set by Twisted before connectionMade
    _writer: DirectWriter             # made in connectionMade

    def __init__(self) -> None:
        self._buffer = b""
        self._env_lines: list[bytes] | None = []
        self._env_bytes = 0
        # One deadline for the environment, then for each command in flight.
        self._deadline: Deadline = NO_DEADLINE
        self._parser = ReplyParser()
        self._pending: _Command | None = None
        self._closing = False
        self.session_active = False
        self.hung_up = False
        # Called with no argument when the HANGUP line arrives.
        self.on_hangup: list[Callable[[], None]] = []
        # When the line last became idle (no command in flight): the session start, then each
        # answered or failed command. The session's watchdog reads it (agi/server.py).
        self.idle_since = 0.0
        # The peer address the factory counted this connection under (None: not counted).
        self.counted_source: str | None = None

    # --- connection -------------------------------------------------------------------
    def connectionMade(self) -> None:
        if not self.factory.connection_opened(self):
            self._closing = True          # refused: over the engine's connection caps
            self.transport.abortConnection()
            return
        self._writer = DirectWriter(self.transport)
        self._deadline = Deadline(self.factory.clock, self._deadline_passed)
        self._deadline.set(self.factory.env_timeout)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.connection_closed(self)
        self._closing = True
        self._stop_deadline()
        self._fail_pending(AgiConnectionLost(str(reason.value)))
        if self.session_active:
            self.session_active = False
            self.factory.session_ended(self)
        # The deadline and the hang-up listeners hold bound methods of this protocol and of
        # its channel: reference cycles. Broken here, a call's objects are freed by reference
        # counting when it ends instead of piling up for the garbage collector, whose full
        # collections stop the reactor for tens of ms under load (bench/README.md).
        self._deadline = NO_DEADLINE
        self.on_hangup.clear()

    def close(self) -> None:
        """Close the connection; Asterisk then continues the dialplan (AGISTATUS=SUCCESS)."""
        if not self._closing:
            self._closing = True
            self._stop_deadline()
            self._fail_pending(AgiConnectionLost("session closed by the engine"))
            self.transport.loseConnection()

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def busy(self) -> bool:
        return self._pending is not None

    # --- incoming bytes ---------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        # Split on b"\n" only (never str.splitlines): Asterisk ends AGI lines with \n.
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            if self._closing:
                return
            if len(line) > MAX_LINE:
                self._abort("line_too_long")
                return
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._env_lines is not None:
                self._environment_line(line)
            else:
                self._reply_line(line)
        if len(self._buffer) > MAX_LINE:
            self._abort("line_too_long")

    def _environment_line(self, line: bytes) -> None:
        assert self._env_lines is not None
        if line:
            self._env_lines.append(line)
            self._env_bytes += len(line) + 1
            if len(self._env_lines) > MAX_ENV_LINES or self._env_bytes > MAX_ENV_BYTES:
                self._abort("env_too_large")
            return
        env = parse_environment(self._env_lines)
        self._env_lines = None
        self._deadline.clear()
        self.session_active = True
        self.idle_since = self.factory.clock.seconds()
        # The environment's timer stays armed: it becomes the first command's (ccengine/
        # timers.py), sparing a cancel and a new timer on every call whose route awaits Redis
        # first. Closing the connection stops it.
        self.factory.session_started(self, env)

    def _reply_line(self, line: bytes) -> None:
        for item in self._parser.feed(line):
            if item is HANGUP:
                self._hangup_seen()
            elif isinstance(item, AgiProtocolError):
                self._abort("protocol", item)
            elif self._pending is None:
                # A reply nobody asked for: replies can no longer be paired with commands.
                self._abort("unsolicited_reply")
            elif isinstance(item, AgiReply):
                self._complete(partial(_succeed, reply=item))
            else:
                self._complete(partial(_fail, error=item))

    def _hangup_seen(self) -> None:
        # HANGUP never answers a command: the pending one gets its own `200 result=-1` first
        # and HANGUP follows ~40 ms later (AGI note 8); when idle it arrives unsolicited.
        self.hung_up = True
        for listener in list(self.on_hangup):
            listener()

    # --- commands ---------------------------------------------------------------------
    def send(self, line: bytes, timeout: float) -> Deferred:
        """Write one command line; the Deferred fires with its AgiReply or fails with AgiError.

        Only one command may be in flight; a second `send` raises AgiBusy at once.
        """
        if line.count(b"\n") != 1 or not line.endswith(b"\n") or b"\r" in line:
            raise ValueError("an AGI command is one line ending in a single b'\\n'")
        if self._pending is not None:
            raise AgiBusy(f"command in flight: {self._pending.line!r}")
        if self._closing or self._env_lines is not None:
            return fail(AgiConnectionLost("AGI session is not open"))
        deferred: Deferred[AgiReply] = Deferred(self._cancel_command)
        self._deadline.set(timeout)
        self._pending = _Command(line, deferred)
        # At once, not on the next reactor turn (ccengine/runtime/netio.py).
        self._writer.write(line)
        return deferred

    def _complete(self, fire: Callable[[Deferred], None]) -> None:
        command, self._pending = self._pending, None
        assert command is not None
        self._deadline.clear()
        # Idle before firing: the callback may send the next command synchronously.
        self.idle_since = self.factory.clock.seconds()
        fire(command.deferred)

    def _fail_pending(self, error: AgiError) -> None:
        if self._pending is not None:
            self._complete(lambda d: d.errback(error))

    def _deadline_passed(self) -> None:
        if self._env_lines is not None:
            self._abort("env_timeout")
        elif self._pending is not None:
            self._abort("timeout", AgiTimeout(f"no reply to {self._pending.line!r}"))

    def _cancel_command(self, deferred: Deferred) -> None:
        # The caller gave up on the reply (handler cancelled): a late reply would be paired with
        # the next command, so the session cannot continue.
        if self._pending is not None and self._pending.deferred is deferred:
            self._pending = None
            self._deadline.clear()
            self.idle_since = self.factory.clock.seconds()
        self._abort("cancelled")

    # --- helpers ----------------------------------------------------------------------
    def _abort(self, kind: str, error: AgiError | None = None) -> None:
        """Give up on the connection: replies can no longer be paired with commands."""
        if self._closing:
            return
        # Closing is set before the pending command fails, so a handler reacting to the
        # failure cannot write another command on this connection.
        self._closing = True
        self._stop_deadline()
        self._fail_pending(error or AgiConnectionLost(f"session aborted: {kind}"))
        self.factory.connection_aborted(self, kind)
        self.transport.loseConnection()

    def _stop_deadline(self) -> None:
        self._deadline.stop()


def _succeed(d: Deferred, reply: object) -> None:
    d.callback(reply)


def _fail(d: Deferred, error: BaseException) -> None:
    d.errback(error)
