"""A scripted Asterisk for FastAGI tests: no sockets, no reactor, replies in the real formats.

Usage (a route test)::

    factory = FastAGIFactory({"hotline": route}, clock, AgiSettings(), AgiMetrics(registry))
    asterisk = ScriptedAsterisk(factory, answer=lambda cmd: b"200 result=3\\n"
                                if cmd.startswith(b"GET DATA") else None)
    asterisk.dial(network_script="hotline", callerid="+4930123")
    assert asterisk.variables["CC_QUEUE"] == "complaint"
    assert asterisk.closed

`answer(command) -> bytes | None` sees each command line (without b"\\n") the engine writes and
returns the bytes Asterisk sends back: a full reply with its b"\\n" (several lines allowed, e.g.
b"200 result=-1 endpos=20160\\nHANGUP\\n"), None for the default reply (`default_reply`), or
HOLD to leave the command unanswered (answer it later with `asterisk.reply(...)`).

Commands are answered as soon as the engine writes them, also when the engine resumes from a
real await (Redis): no polling needed. When the engine closes the connection the harness
delivers `connectionLost` (after the current reply is processed) and fires `finished`.

Formats come from tests/fixtures/agi (copies of ../shared/asterisk/transcripts2, Asterisk
22.10.1): environment order of agi1_suite, replies of agi1_suite / agi1_dtmf / agi2_hangup_*.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Callable

from prometheus_client import CollectorRegistry
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from ccengine.agi.metrics import AgiMetrics
from ccengine.agi.server import FastAGIFactory
from ccengine.agi.settings import AgiSettings

__all__ = ["environment_block", "default_reply", "split_args", "ScriptedAsterisk", "HOLD",
           "digit_code_reply", "get_data_reply", "AGI_FIXTURES", "capture_dialogue", "replay",
           "agi_factory"]

HOLD = b""
AGI_FIXTURES = Path(__file__).parent / "fixtures" / "agi"


def capture_dialogue(name: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Read tests/fixtures/agi/<name>.agi.txt (transcripts2 format: `<< 'repr'` received,
    `>> 'repr'` sent) into (environment block, [(command line, bytes Asterisk sent after it
    until the next command), ...]). Commands are returned without their b"\n"."""
    env = b""
    dialogue: list[tuple[bytes, bytes]] = []
    for row in (AGI_FIXTURES / f"{name}.agi.txt").read_text("utf-8").splitlines():
        _, _, rest = row.partition(" ")
        direction, _, literal = rest.partition(" ")
        if direction not in ("<<", ">>"):
            continue
        line = ast.literal_eval(literal).encode("utf-8")
        if direction == ">>":
            dialogue.append((line[:-1], b""))
        elif dialogue:
            command, received = dialogue[-1]
            dialogue[-1] = (command, received + line)
        else:
            env += line
    return env, dialogue


def replay(dialogue: list[tuple[bytes, bytes]], exact: bool = False) -> Callable[[bytes], bytes]:
    """An `answer` for ScriptedAsterisk that expects the engine to send the recorded commands
    in order and answers each with the bytes recorded after it.

    By default a command matches when Asterisk would parse it to the same arguments
    (`split_args`): the engine quotes every text argument (`EXEC Playback "beep"`) where the
    capture's tool sometimes did not (`EXEC Playback beep`). exact=True compares bytes."""
    remaining = list(dialogue)

    def answer(command: bytes) -> bytes:
        assert remaining, f"engine sent {command!r} after the recorded dialogue ended"
        expected, received = remaining.pop(0)
        same = command == expected if exact else split_args(command) == split_args(expected)
        assert same, f"engine sent {command!r}, the capture has {expected!r}"
        return received

    return answer

# Key order and values of agi1_suite.from_asterisk.bin (call 5001 in context hotline).
_ENV = [
    ("agi_network", "yes"), ("agi_network_script", "suite"),
    ("agi_request", None), ("agi_channel", "PJSIP/caller-00000000"), ("agi_language", "en"),
    ("agi_type", "PJSIP"), ("agi_uniqueid", "cclab-1795366249.0"), ("agi_version", "22.10.1"),
    ("agi_callerid", "caller"), ("agi_calleridname", "CC Caller"), ("agi_callingpres", "0"),
    ("agi_callingani2", "0"), ("agi_callington", "0"), ("agi_callingtns", "0"),
    ("agi_dnid", "5001"), ("agi_rdnis", "unknown"), ("agi_context", "hotline"),
    ("agi_extension", "5001"), ("agi_priority", "2"), ("agi_enhanced", "0.0"),
    ("agi_accountcode", ""), ("agi_threadid", "140424173049536"),
]


def agi_factory(routes, clock: Clock | None = None, registry: CollectorRegistry | None = None,
                **settings: float) -> tuple[FastAGIFactory, Clock, CollectorRegistry]:
    """A FastAGIFactory on a task.Clock with a fresh registry; keywords override AgiSettings."""
    clock = clock or Clock()
    registry = registry or CollectorRegistry()
    factory = FastAGIFactory(routes, clock, AgiSettings(**settings), AgiMetrics(registry))
    return factory, clock, registry


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def environment_block(network_script: str | bytes = "hotline", *, args: tuple = (),
                      **overrides: str | bytes) -> bytes:
    """The environment Asterisk sends, ending with the blank line.

    Keyword overrides drop the `agi_` prefix: callerid=, calleridname=, uniqueid=, channel=,
    language=, dnid=, extension=, context= ...; values may be bytes (e.g. invalid UTF-8).
    `args` become agi_arg_1..N after agi_threadid, as in agi3_env_args."""
    lines = []
    for key, value in _ENV:
        short = key[len("agi_"):]
        if short == "network_script":
            value = network_script
        elif short == "request":
            value = b"agi://127.0.0.1:4573/" + _b(network_script)
        value = overrides.pop(short, value)
        lines.append(key.encode() + b": " + _b(value))
    if overrides:
        raise TypeError(f"unknown environment keys: {sorted(overrides)}")
    for n, arg in enumerate(args, 1):
        lines.append(b"agi_arg_%d: " % n + _b(arg))
    return b"\n".join(lines) + b"\n\n"


def digit_code_reply(digit: str, endpos: int | None = None) -> bytes:
    """STREAM FILE / WAIT FOR DIGIT interrupted by `digit`: `200 result=50 endpos=17280`."""
    tail = b"" if endpos is None else b" endpos=%d" % endpos
    return b"200 result=%d%s\n" % (ord(digit), tail)


def get_data_reply(digits: str, timed_out: bool = True) -> bytes:
    """GET DATA answers (AGI note 4): `200 result= (timeout)` with no digit, `200 result=1
    (timeout)` for '1' then the timeout, `200 result=123` when max_digits were entered."""
    return b"200 result=" + digits.encode() + (b" (timeout)" if timed_out else b"") + b"\n"


def default_reply(command: bytes) -> bytes:
    """What Asterisk 22 answered to each command on a live, answered channel with no input."""
    verb = command.split(b" ")
    if command.startswith(b"SET VARIABLE") or command.startswith(b"VERBOSE"):
        return b"200 result=1\n"
    if command.startswith(b"GET VARIABLE") or command.startswith(b"GET FULL VARIABLE"):
        return b"200 result=0\n"                        # not set
    if command.startswith(b"STREAM FILE"):
        return b"200 result=0 endpos=3404\n"            # played to the end
    if command.startswith(b"GET DATA"):
        return b"200 result= (timeout)\n"               # nothing pressed
    if command.startswith(b"HANGUP"):
        return b"200 result=1\nHANGUP\n"                 # AGI note 8
    if command.startswith(b"CHANNEL STATUS"):
        return b"200 result=6\n"
    if verb[0] in (b"ANSWER", b"NOOP", b"EXEC", b"SAY") or command.startswith(b"WAIT FOR DIGIT"):
        return b"200 result=0\n"
    return b"510 Invalid or unknown command\n"


def split_args(command: bytes) -> list[str]:
    r"""Split a command line the way res_agi does (AGI note 7): spaces separate arguments,
    double quotes group, a backslash takes the next character literally (`C:\temp` -> `C:temp`)."""
    text = command.decode("utf-8")
    args: list[str] = []
    current: list[str] = []
    in_quotes = escaped = started = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = started = True
        elif ch == '"':
            in_quotes = not in_quotes
            started = True
        elif ch == " " and not in_quotes:
            if started:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(ch)
            started = True
    if started:
        args.append("".join(current))
    return args


class _AsteriskTransport(StringTransport):
    def __init__(self, on_write: Callable[[], None], on_close: Callable[[], None]) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "127.0.0.1", 41628))
        self._on_write = on_write
        self._on_close = on_close

    def write(self, data: bytes) -> None:
        super().write(data)
        self._on_write()

    def loseConnection(self) -> None:
        already = self.disconnecting
        super().loseConnection()
        if not already:
            self._on_close()


class ScriptedAsterisk:
    """Asterisk's side of one FastAGI session, answering each command as it is written."""

    def __init__(self, factory, answer: Callable[[bytes], bytes | None] | None = None) -> None:
        self.factory = factory
        self.answer = answer or (lambda command: None)
        self.commands: list[bytes] = []          # every command line, without b"\n"
        self.variables: dict[str, str] = {}      # SET VARIABLE name -> value, as Asterisk sees it
        self.held: list[bytes] = []              # commands answered with HOLD, oldest first
        self.finished: Deferred = Deferred()     # fires (None) when the engine closed
        self.lost = False
        self.errors: list[Exception] = []        # exceptions raised by `answer`
        self._seen = 0
        self._pumping = False
        self._close_requested = False
        self.transport = _AsteriskTransport(self._pump, self._closed_by_engine)
        self.protocol = None

    # --- driving the session --------------------------------------------------------------
    def connect(self) -> "ScriptedAsterisk":
        """Open the TCP connection only (nothing sent yet)."""
        self.protocol = self.factory.buildProtocol(self.transport.getPeer())
        self.protocol.makeConnection(self.transport)
        return self

    def dial(self, network_script: str | bytes = "hotline", **env) -> "ScriptedAsterisk":
        """Connect and send the environment (see `environment_block` for the keywords)."""
        if self.protocol is None:
            self.connect()
        self.send(environment_block(network_script, **env))
        return self

    def send(self, data: bytes) -> None:
        """Bytes from Asterisk to the engine, e.g. an unsolicited b"HANGUP\\n".

        Re-raises the first exception an `answer` callable raised (e.g. a replay mismatch)."""
        self._run(lambda: self.protocol.dataReceived(data))
        self.check()

    def check(self) -> None:
        """Raise the first exception raised by `answer` so far (a wrong command, say)."""
        if self.errors:
            raise self.errors[0]

    def advance(self, seconds: float) -> None:
        """Advance the factory's task.Clock (watchdog, timeouts), then `check()`."""
        self.factory.clock.advance(seconds)
        self.check()

    def reply(self, data: bytes) -> None:
        """Answer the oldest held command."""
        self.held.pop(0)
        self.send(data)

    def hangup(self) -> None:
        """The caller hangs up while the engine is idle: Asterisk sends `HANGUP`
        (agi2_hangup_idle)."""
        self.send(b"HANGUP\n")

    def drop(self) -> None:
        """The TCP connection breaks (Asterisk crashed or restarted)."""
        self._deliver_lost(Failure(ConnectionDone("Asterisk went away")))

    @property
    def closed(self) -> bool:
        """The engine closed the connection (Asterisk then continues the dialplan)."""
        return self.transport.disconnecting

    @property
    def written(self) -> bytes:
        return self.transport.value()

    # --- internals ------------------------------------------------------------------------
    def _run(self, action: Callable[[], None]) -> None:
        if self._pumping:
            action()
            return
        self._pumping = True
        try:
            action()
            self._answer_new_commands()
        finally:
            self._pumping = False
        if self._close_requested:
            self._deliver_lost(Failure(ConnectionDone("closed by the engine")))

    def _pump(self) -> None:
        if not self._pumping:
            self._run(lambda: None)

    def _answer_new_commands(self) -> None:
        while True:
            lines = self.transport.value().split(b"\n")
            complete = lines[:-1]
            if self._seen >= len(complete) or self.lost:
                return
            command = complete[self._seen]
            self._seen += 1
            self.commands.append(command)
            if command.startswith(b"SET VARIABLE "):
                args = split_args(command)
                if len(args) == 4:
                    self.variables[args[2]] = args[3]
            if self.transport.disconnecting:
                continue  # Asterisk never sees commands after the close is under way
            try:
                reply = self.answer(command)
            except Exception as exc:  # reported to the test by dial()/send(), see `errors`
                self.errors.append(exc)
                reply = HOLD
            if reply is None:
                reply = default_reply(command)
            if reply == HOLD:
                self.held.append(command)
            else:
                self.protocol.dataReceived(reply)

    def _closed_by_engine(self) -> None:
        self._close_requested = True
        if not self._pumping:
            self._deliver_lost(Failure(ConnectionDone("closed by the engine")))

    def _deliver_lost(self, reason: Failure) -> None:
        if self.lost:
            return
        self.lost = True
        self.protocol.connectionLost(reason)
        if not self.finished.called:
            self.finished.callback(None)
