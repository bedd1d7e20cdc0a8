"""AgiChannel: the typed AGI commands domain code calls (`await channel.stream_file("hello")`).

Every argument is validated (`identifier`, `digit_string`) or quoted (`quote`) by
`format_command`; untrusted text never reaches the wire raw.
"""
from __future__ import annotations

import re

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from ccengine.agi.protocol import FastAGIProtocol
from ccengine.agi.wire import (
    AgiDeadChannel, AgiEnvironment, AgiProtocolError, AgiReply, UnsafeAgiText,
    digit_string, format_command, identifier,
)

__all__ = ["AgiChannel", "CallerHungUp", "MediaFailed", "PlaybackFailed", "AgiAppNotFound"]


class CallerHungUp(Exception):
    """The caller is gone: the handler should stop (outcome `hangup`)."""


class MediaFailed(Exception):
    """A media command answered result=-1 and no HANGUP followed within HANGUP_GRACE."""


class PlaybackFailed(MediaFailed):
    """STREAM FILE / SAY answered -1 and no HANGUP followed, e.g. a missing sound file
    (AGI note 6: `200 result=-1 endpos=0`)."""


class EngineStopping(Exception):
    """The engine is stopping: the route is not to keep the caller listening any longer; its
    session gives the caller the route's default at once (agi/server.py, graceful stop)."""


class AgiAppNotFound(Exception):
    """EXEC of an application Asterisk does not have (`200 result=-2`, AGI note 6)."""


_ESCAPE_DIGITS = re.compile(r"[0-9*#]*")
_RESULT_DIGITS = re.compile(r"[0-9*#A-D]*")
_DIGIT_CHARS = frozenset("0123456789*#ABCD")
# One EXEC argument: no separator (`,` `|`), no quote or backslash, no `$`/`{`/`[` expression,
# no `&` (Dial/Playback lists), no `(`/`)` option groups, no space, no control characters.
_APP_ARG = re.compile(r"[A-Za-z0-9_.:/@+=*#-]{0,255}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Za-z0-9]{1,8})?")
# After a media command answers -1, Asterisk sends HANGUP ~40 ms later if the caller is gone
# (41-43 ms in agi2_hangup_stream, agi2_hangup_exec_wait, agi1_suite). We wait this long for it
# before calling the -1 a playback failure.
HANGUP_GRACE = 0.5


def _escape_digits(digits: str) -> str:
    if not isinstance(digits, str) or not _ESCAPE_DIGITS.fullmatch(digits):
        raise UnsafeAgiText(f"not escape digits: {digits!r:.100}")
    return digits  # sent quoted: `STREAM FILE beep ""` as in agi1_suite


def _digit_from_code(reply: AgiReply) -> str:
    """STREAM FILE / WAIT FOR DIGIT / SAY answer 0 or the ASCII code of the digit (50 -> '2')."""
    code = reply.result_int
    if code == 0:
        return ""
    if code is None or not 0 < code < 128 or chr(code) not in _DIGIT_CHARS:
        raise AgiProtocolError(f"unexpected digit result: {reply.result!r}")
    return chr(code)


# Every route acknowledges its decision with this variable, set last (the dialplan contract).
ACK_VARIABLE = "CC_ROUTE_OK"


class AgiChannel:
    """One call's AGI session seen as typed commands. Each method is a coroutine."""

    def __init__(self, protocol: FastAGIProtocol, env: AgiEnvironment, command_timeout: float,
                 media_timeout: float = 120.0, clock: IReactorTime | None = None) -> None:
        self.protocol = protocol
        self.env = env
        self.clock = clock if clock is not None else protocol.factory.clock
        self.command_timeout = command_timeout
        # Playback of a prompt lasts as long as the prompt; it gets its own, longer bound.
        self.media_timeout = media_timeout
        # True once CC_ROUTE_OK=1 was accepted: the dialplan has the route's decision, and
        # the watchdog must not replace it (docs/architecture.md, channel variables).
        self.acknowledged = False
        # Set by a stopping engine: the next media command (prompt, menu, digits) raises
        # EngineStopping instead of keeping the caller listening; other commands go on, so a
        # route past its last question still completes with the caller's own choice.
        self.stopping = False

    @property
    def hung_up(self) -> bool:
        return self.protocol.hung_up

    # --- plumbing -----------------------------------------------------------------------
    async def _command(self, line: bytes, timeout: float | None = None) -> AgiReply:
        try:
            return await self.protocol.send(line, timeout or self.command_timeout)
        except AgiDeadChannel as exc:
            raise CallerHungUp(str(exc)) from exc

    async def _media(self, line: bytes, timeout: float,
                     failure: type[MediaFailed] = MediaFailed) -> AgiReply:
        if self.protocol.hung_up:
            raise CallerHungUp("caller hung up before " + line.split(b" ")[0].decode())
        if self.stopping:
            raise EngineStopping(line.split(b" ")[0].decode())
        reply = await self._command(line, timeout)
        if reply.result_int == -1:
            if await self._hangup_follows():
                raise CallerHungUp(f"caller hung up during {line!r}")
            raise failure(f"{line!r} answered {reply.result}")
        return reply

    async def _hangup_follows(self) -> bool:
        """True when the HANGUP line arrives within HANGUP_GRACE (AGI note 8: it comes AFTER
        the command's `200 result=-1`)."""
        if self.protocol.hung_up:
            return True
        heard: Deferred = Deferred()

        def on_hangup() -> None:
            if not heard.called:
                heard.callback(True)

        def on_timeout() -> None:
            if not heard.called:
                heard.callback(False)

        timer = self.clock.callLater(HANGUP_GRACE, on_timeout)
        self.protocol.on_hangup.append(on_hangup)
        try:
            return await heard
        finally:
            self.protocol.on_hangup.remove(on_hangup)
            if timer.active():
                timer.cancel()

    # --- commands -----------------------------------------------------------------------
    async def answer(self) -> None:
        await self._media(format_command("ANSWER"), self.command_timeout)

    async def hangup(self) -> None:
        """Hang up the call; a no-op when the caller is already gone (511 is expected then)."""
        if self.protocol.hung_up:
            return
        try:
            await self._command(format_command("HANGUP"))
        except CallerHungUp:
            return

    async def set_variable(self, name: str, value: str) -> None:
        if name == ACK_VARIABLE:
            raise ValueError(f"{ACK_VARIABLE} is set by acknowledge(), after the route's variables")
        await self._command(format_command("SET VARIABLE", identifier(name), value))

    async def acknowledge(self) -> None:
        """Set CC_ROUTE_OK=1, last: the route's decision is complete, and the dialplan acts on
        the route's variables only when it is set (docs/architecture.md). From then on the
        watchdog keeps the decision instead of replacing it."""
        await self._command(format_command("SET VARIABLE", identifier(ACK_VARIABLE), "1"))
        self.acknowledged = True

    async def get_variable(self, name: str) -> str | None:
        """The variable's value, or None when it is not set (`200 result=0`)."""
        reply = await self._command(format_command("GET VARIABLE", identifier(name)))
        if reply.result_int != 1:
            return None
        return reply.data or ""

    async def set_language(self, language: str) -> None:
        if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            raise UnsafeAgiText(f"not a language code: {language!r:.40}")
        await self.set_variable("CHANNEL(language)", language)

    async def verbose(self, text: str, level: int = 1) -> None:
        if not 1 <= level <= 4:
            raise ValueError("verbose level must be 1..4")
        await self._command(format_command("VERBOSE", text, level))

    async def stream_file(self, name: str, escape_digits: str = "") -> str:
        """Play a prompt; '' when it played to the end, else the escape digit pressed."""
        line = format_command("STREAM FILE", identifier(name), _escape_digits(escape_digits))
        return _digit_from_code(await self._media(line, self.media_timeout, PlaybackFailed))

    async def get_data(self, name: str, timeout_ms: int, max_digits: int) -> str:
        """Play a prompt and collect up to `max_digits` digits; '' when nothing was pressed.

        The result itself is the digits: `200 result= (timeout)` when none were pressed,
        `200 result=1 (timeout)` when '1' was followed by the timeout (AGI note 4)."""
        _check_ms(timeout_ms)
        if not 1 <= max_digits <= 64:
            raise ValueError("max_digits must be 1..64")
        line = format_command("GET DATA", identifier(name), timeout_ms, max_digits)
        wait = self.media_timeout + timeout_ms / 1000 * max_digits
        reply = await self._media(line, wait)
        if not _RESULT_DIGITS.fullmatch(reply.result):
            raise AgiProtocolError(f"unexpected GET DATA result: {reply.result!r}")
        return reply.result

    async def wait_for_digit(self, timeout_ms: int) -> str:
        """Wait for one digit; '' on timeout (`200 result=0`), else the digit (51 -> '3')."""
        _check_ms(timeout_ms)
        line = format_command("WAIT FOR DIGIT", timeout_ms)
        return _digit_from_code(
            await self._media(line, self.command_timeout + timeout_ms / 1000))

    async def say_number(self, number: int, escape_digits: str = "") -> str:
        if isinstance(number, bool) or not isinstance(number, int):
            raise TypeError("say_number takes an int")
        line = format_command("SAY NUMBER", number, _escape_digits(escape_digits))
        return _digit_from_code(await self._media(line, self.media_timeout, PlaybackFailed))

    async def say_digits(self, digits: str, escape_digits: str = "") -> str:
        line = format_command("SAY DIGITS", digit_string(digits), _escape_digits(escape_digits))
        return _digit_from_code(await self._media(line, self.media_timeout, PlaybackFailed))

    async def exec_app(self, app: str, *args: str) -> int:
        """Run a dialplan application; returns its result (0 usually; -1 when the application
        failed and no HANGUP followed). The arguments are joined with ',' and quoted.

        EXEC still works on a dead channel (AGI note 8), so it only refuses when HANGUP was
        seen, like every media command."""
        for arg in args:
            if not isinstance(arg, str) or not _APP_ARG.fullmatch(arg):
                raise UnsafeAgiText(f"unsafe application argument: {arg!r:.100}")
        parts: list[object] = [identifier(app)]
        if args:
            parts.append(",".join(args))
        if self.protocol.hung_up:
            raise CallerHungUp(f"caller hung up before EXEC {app}")
        reply = await self._command(format_command("EXEC", *parts), self.media_timeout)
        result = reply.result_int
        if result == -2:
            raise AgiAppNotFound(app)
        if result is None:
            raise AgiProtocolError(f"unexpected EXEC result: {reply.result!r}")
        if result == -1 and await self._hangup_follows():
            raise CallerHungUp(f"caller hung up during EXEC {app}")
        return result


def _check_ms(timeout_ms: int) -> None:
    if (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int)
            or not 0 <= timeout_ms <= 600_000):
        raise ValueError(f"timeout_ms must be an int 0..600000, got {timeout_ms!r}")

