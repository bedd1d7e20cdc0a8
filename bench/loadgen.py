"""Asterisk's side of FastAGI as a load generator, over real loopback TCP (raw asyncio).

Each session sends the environment block of a real call (agi1_suite's keys and order, a fresh
agi_uniqueid and a caller from the pool), then answers every command the way Asterisk 22 did in
../shared/asterisk/transcripts2 (copies in tests/fixtures/agi/):
  SET VARIABLE -> `200 result=1`; STREAM FILE -> `200 result=0 endpos=3404`, or, for the IVR
  menu prompt (its first piece), the menu key as its ASCII code
  `200 result=49 endpos=8000` (agi1_dtmf: `200 result=50 endpos=17280`); WAIT FOR DIGIT ->
  `200 result=0`; GET DATA -> `200 result= (timeout)`; ANSWER/EXEC/NOOP -> `200 result=0`;
  HANGUP -> `200 result=1` then `HANGUP`; GET VARIABLE -> `200 result=0`; anything else -> 510.

Sessions that type (`Workload.call`, bench/centre.py): each call comes with the entries its
caller types, in order; at every prompt that accepts digits (STREAM FILE with escape digits)
the next entry starts: its first key interrupts the prompt (`200 result=<ASCII> endpos=8000`,
agi1_dtmf), the rest come one per WAIT FOR DIGIT (`200 result=51`, agi1_dtmf), then `#`
(35) ends the entry. Used for agent logins (number, then PIN) and hold announcements (`1`:
keep waiting).

A session succeeds when the server set CC_ROUTE_OK and then closed the connection (the
dialplan continues), within `timeout` seconds, and, when the workload names an `expect`ed
prompt, after a STREAM FILE of it (a login's `agent_login_ok`, not
`agent_login_failed`). Latencies: a command's latency is the time from
our previous write (environment or reply) to the command's arrival, i.e. the server's turn;
a call's is from its (scheduled) start to the server's close, connect included.

Closed loop: `concurrency` callers, each starting its next call when the last one ended.
Open loop: calls started at a fixed `rate`, whatever the server's state (no coordinated
omission: the call's clock starts at its scheduled time).

    .venv/bin/python bench/loadgen.py --port 4573 --closed 50 --duration 5
    .venv/bin/python bench/loadgen.py --port 4573 --rate 500 --duration 5
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import environment_block, percentile  # noqa: E402

_SET = b"SET VARIABLE "
_ROUTE_OK = b"SET VARIABLE CC_ROUTE_OK "
_REPLIES = (
    (b"SET VARIABLE", b"200 result=1\n"),
    (b"STREAM FILE", b"200 result=0 endpos=3404\n"),
    (b"WAIT FOR DIGIT", b"200 result=0\n"),
    (b"GET DATA", b"200 result= (timeout)\n"),
    (b"ANSWER", b"200 result=0\n"),
    (b"EXEC", b"200 result=0\n"),
    (b"NOOP", b"200 result=0\n"),
    (b"HANGUP", b"200 result=1\nHANGUP\n"),
    (b"GET VARIABLE", b"200 result=0\n"),
    (b"GET FULL VARIABLE", b"200 result=0\n"),
    (b"CHANNEL STATUS", b"200 result=6\n"),
    (b"VERBOSE", b"200 result=1\n"),
)
_INVALID = b"510 Invalid or unknown command\n"


def digit_reply(key: str) -> bytes:
    """A prompt interrupted by `key`: its ASCII code (agi1_dtmf: `200 result=50 endpos=17280`)."""
    return b"200 result=%d endpos=8000\n" % ord(key)


def takes_digits(line: bytes) -> bool:
    """The IVR menu prompt (a STREAM FILE of `.../menu` with escape digits). The greeting takes
    digits too (type-ahead); the bench's caller listens to it and presses at the menu, the
    longer of the two paths."""
    if not line.startswith(b"STREAM FILE") or line.endswith(b' ""'):
        return False
    return line.split(b" ", 3)[2].rsplit(b"/", 1)[-1].startswith(b"menu")


def reply_to(line: bytes) -> bytes:
    """Asterisk's reply to a command nobody presses a key during."""
    for prefix, reply in _REPLIES:
        if line.startswith(prefix):
            return reply
    return _INVALID


@dataclass
class Workload:
    script: str = "hotline"
    callers: list[tuple[str, str]] = field(default_factory=lambda: [("13800000000", "CC Caller")])
    menu_key: str = "1"
    timeout: float = 10.0
    record: bool = False           # keep the command lines of every session (sequence capture)
    # Sessions that type: call number -> (environment block, entries typed at the prompts that
    # accept digits); None: the hotline's caller from `callers`, menu_key at the menu.
    call: Callable[[int], tuple[bytes, list[str]]] | None = None
    expect: bytes = b""            # a prompt the session must have played to count as ok


@dataclass
class Result:
    label: str
    seconds: float
    ok: int = 0
    failed: int = 0
    commands: int = 0
    command_latency: list[float] = field(default_factory=list)
    call_latency: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    loadgen_cpu: float = 0.0       # share of one core used by the load generator
    recorded: list[list[bytes]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def ms(self, which: str, q: float) -> float:
        values = self.command_latency if which == "command" else self.call_latency
        return percentile(values, q) * 1000

    def finish(self) -> Result:
        self.command_latency.sort()
        self.call_latency.sort()
        return self

    def line(self) -> str:
        per_call = self.commands / self.ok if self.ok else 0
        return (f"{self.label}: {self.rate:8.0f} sessions/s  ok={self.ok} failed={self.failed}"
                f"  cmd p50/p99 {self.ms('command', .5):.2f}/{self.ms('command', .99):.2f} ms"
                f"  call p50/p99 {self.ms('call', .5):.2f}/{self.ms('call', .99):.2f} ms"
                f"  {per_call:.1f} cmds/call  loadgen cpu {self.loadgen_cpu:.0%}"
                + (f"  failures {self.failures}" if self.failures else ""))


class _Collector:
    """Where sessions report; only sessions that end inside the window are counted."""

    def __init__(self, result: Result, window: tuple[float, float]) -> None:
        self.result = result
        self.window = window

    def done(self, session: AgiSession, error: str | None) -> None:
        end = time.perf_counter()
        start, stop = self.window
        if not start <= end <= stop:
            return
        r = self.result
        if error is None:
            r.ok += 1
            r.commands += session.count
            r.command_latency.extend(session.latencies)
            r.call_latency.append(end - session.started)
        else:
            r.failed += 1
            r.failures[error] = r.failures.get(error, 0) + 1
        if session.lines is not None:
            r.recorded.append(session.lines)


class AgiSession(asyncio.Protocol):
    """One call, Asterisk's side."""

    def __init__(self, env: bytes, digit_reply: bytes, started: float, timeout: float,
                 collector: _Collector, finished: asyncio.Future | None, record: bool,
                 entries: list[str] | None = None, expect: bytes = b"") -> None:
        self.env = env
        self.entries = entries         # None: the hotline caller (menu key at the menu)
        self.typing = ""               # keys of the current entry still to come
        self.expect = expect
        self.heard = not expect
        self.digit_reply = digit_reply
        self.started = started
        self.collector = collector
        self.finished = finished
        self.timeout = timeout
        self.transport = None
        self.buffer = b""
        self.latencies: list[float] = []
        self.count = 0
        self.pressed = False
        self.routed = False
        self.hung_up = False
        self.error: str | None = None
        self.timer = None
        self.lines: list[bytes] | None = [] if record else None
        self.last = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(self.timeout, self._timed_out)
        transport.write(self.env)
        self.last = time.perf_counter()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if b"\n" not in buffer:
            self.buffer = buffer
            return
        now = time.perf_counter()
        *lines, self.buffer = buffer.split(b"\n")
        out = []
        for line in lines:
            self.count += 1
            self.latencies.append(now - self.last)
            if self.lines is not None:
                self.lines.append(line)
            out.append(self.answer(line))
        self.transport.write(b"".join(out))
        self.last = time.perf_counter()

    def answer(self, line: bytes) -> bytes:
        if line.startswith(_SET):
            if line.startswith(_ROUTE_OK):
                self.routed = True
            return b"200 result=1\n"
        if self.entries is not None:
            return self.type_entry(line)
        if not self.pressed and takes_digits(line):
            # The menu prompt: the caller presses the key.
            self.pressed = True
            return self.digit_reply
        if line.startswith(b"HANGUP"):
            self.hung_up = True
        return reply_to(line)

    def type_entry(self, line: bytes) -> bytes:
        """A caller who types `entries`, one per prompt that accepts digits."""
        if line.startswith(b"STREAM FILE"):
            if not self.heard and self.expect in line:
                self.heard = True
            if self.entries and not line.endswith(b' ""'):
                entry = self.entries.pop(0)
                self.typing = entry[1:] + ("#" if len(entry) > 1 else "")
                return digit_reply(entry[0])
        elif line.startswith(b"WAIT FOR DIGIT") and self.typing:
            key, self.typing = self.typing[0], self.typing[1:]
            return b"200 result=%d\n" % ord(key)
        if line.startswith(b"HANGUP"):
            self.hung_up = True
        return reply_to(line)

    def _timed_out(self) -> None:
        self.error = "timeout"
        self.transport.abort()

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        error = self.error
        if error is None:
            if exc is not None:
                error = type(exc).__name__
            elif not self.routed and not self.hung_up:
                error = "closed_without_route"
            elif not self.heard:
                error = "expected_prompt_not_played"
        self.collector.done(self, error)
        if self.finished is not None and not self.finished.done():
            self.finished.set_result(None)


# One uniqueid serial for every hotline call this process makes: two loads started within the
# same second (a warm-up, then the measured calls) must not send the same agi_uniqueid, which
# the engine takes as the call id (a second record for an id is refused and made again under
# another id: redis_calls.py counted 2.27 scripts per call instead of 2 when they collided).
_UNIQUE = itertools.count()
_EPOCH = int(time.time())


class _Calls:
    """Builds each call's environment block: a fresh uniqueid, callers in rotation."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.serial = itertools.count()
        self.callers = itertools.cycle(workload.callers)
        self.digit_reply = digit_reply(workload.menu_key)

    def env(self) -> bytes:
        n = next(self.serial)
        number, name = next(self.callers)
        return environment_block(self.workload.script, f"bench-{_EPOCH}.{next(_UNIQUE)}", number,
                                 name, n)

    def next_call(self) -> tuple[bytes, list[str] | None]:
        """The next call's environment and what its caller types (None: the hotline caller)."""
        if self.workload.call is None:
            return self.env(), None
        return self.workload.call(next(self.serial))


async def _one_call(loop, host: str, port: int, calls: _Calls, collector: _Collector,
                    started: float) -> None:
    finished = loop.create_future()
    w = calls.workload
    env, entries = calls.next_call()
    session = AgiSession(env, calls.digit_reply, started, w.timeout, collector,
                         finished, w.record, entries, w.expect)
    try:
        await loop.create_connection(lambda: session, host, port)
    except OSError as exc:
        collector.done(session, type(exc).__name__)
        return
    await finished


async def closed_loop(host: str, port: int, concurrency: int, duration: float,
                      workload: Workload, warmup: float = 0.5, label: str = "") -> Result:
    """`concurrency` callers back to back for warmup + duration seconds."""
    loop = asyncio.get_running_loop()
    calls = _Calls(workload)
    begin = time.perf_counter()
    window = (begin + warmup, begin + warmup + duration)
    result = Result(label or f"closed {concurrency}", duration)
    collector = _Collector(result, window)

    async def caller() -> None:
        while time.perf_counter() < window[1]:
            await _one_call(loop, host, port, calls, collector, time.perf_counter())

    cpu0 = time.process_time()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    result.loadgen_cpu = (time.process_time() - cpu0) / (time.perf_counter() - begin)
    return result.finish()


async def open_loop(host: str, port: int, rate: float, duration: float, workload: Workload,
                    warmup: float = 0.5, label: str = "") -> Result:
    """A call every 1/rate seconds for warmup + duration seconds; waits for the last ones."""
    loop = asyncio.get_running_loop()
    calls = _Calls(workload)
    begin = time.perf_counter()
    window = (begin + warmup, begin + warmup + duration + workload.timeout + 1)
    result = Result(label or f"open {rate:g}/s", duration)
    collector = _Collector(result, window)
    tasks = set()
    total = int((warmup + duration) * rate)
    counted_from = int(warmup * rate)
    cpu0 = time.process_time()
    for i in range(total):
        scheduled = begin + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        target = collector if i >= counted_from else _Collector(Result("warmup", 1), (0, 0))
        task = loop.create_task(_one_call(loop, host, port, calls, target, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_for = time.perf_counter() - begin
    await asyncio.gather(*list(tasks))
    result.loadgen_cpu = (time.process_time() - cpu0) / (time.perf_counter() - begin)
    if sent_for > (warmup + duration) * 1.05:
        result.failures["loadgen_late"] = 1   # the generator could not keep the rate
    return result.finish()


async def health_checks(host: str, port: int, count: int) -> int:
    """`count` TCP health checks: connect, close before sending anything. Returns failures."""
    failures = 0
    for _ in range(count):
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            failures += 1
            continue
        writer.close()
        await writer.wait_closed()
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--closed", type=int, metavar="CONCURRENCY")
    mode.add_argument("--rate", type=float, metavar="CALLS_PER_S")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--script", default="hotline")
    parser.add_argument("--caller", default="13800000000")
    parser.add_argument("--menu-key", default="1")
    args = parser.parse_args()
    workload = Workload(args.script, [(args.caller, "CC Caller")], args.menu_key)
    if args.closed:
        coro = closed_loop(args.host, args.port, args.closed, args.duration, workload)
    else:
        coro = open_loop(args.host, args.port, args.rate, args.duration, workload)
    print(asyncio.run(coro).line())


if __name__ == "__main__":
    main()
