"""The engine's CPU on a real Asterisk's AMI stream: a replay of transcripts3 load_2cps_ami.

The capture (tests/fixtures/ami/load_2cps_ami.*, tests/fixtures/transcripts3_README.md): every
byte an AMI client logged in with `Events: on` and read=all received from Asterisk 22.10.1
while 120 calls came in at 2 calls/s (37,806 events, 315 per call, half of them VarSet), and
the time and size of each of its 13,515 reads.

A stand-in AMI server (asyncio, this process, core 1) answers the engine's Login and the
actions it sends after it (Ping, QueueStatus, QueueAdd ...) with what Asterisk answered in the
captures (tests/ami_server.py), then sends the captured events, read by read, at the recorded
pace (`--speed 2`: twice as fast; `--speed 0`: as fast as the engine reads). The engine is
`bench/servers.py hotline --ami-port` (app.build_service, every feature, an embedded
redis-server), a process of its own on core 0, so /proc/PID/stat gives its CPU alone.

Two variants, each on a fresh engine and Redis:
- unfiltered: every event of the capture (what the engine gets from a user with read=all);
- filtered: what Asterisk would send the engine's AMI user of deploy/asterisk/manager.conf:
  its `read=` classes and the engine's Login `Events:` (main/manager.c: an event goes to a
  session when `(send_events & category) == category`, send_events = readperm & the Login's
  Events mask), then the user's `eventfilter` lines (main/manager.c `should_send_event`,
  `filter_cmp_fn`, `manager_add_filter`; configs/samples/manager.conf.sample). An event's
  class is its `Privilege:` header, which Asterisk writes from the same category
  (`authority_to_str`; every event of this capture has one class, e.g. VarSet
  `dialplan,all`: main/stasis_channels.c varset_to_ami, EVENT_FLAG_DIALPLAN).

Reported per variant: events sent, events/s over the replay, the engine's CPU from the first
event to the last one handled (ccengine_ami_events_total) plus 0.5 s for its Redis writes,
per call (calls = QueueCallerJoin events of the replay), and the idle engine's CPU over the same
wall time (measured over up to --idle-seconds before the stream, scaled; the engine's timers).

    .venv/bin/python bench/ami_real.py [--speed 1] [--smoke] [--profile DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import lzma
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bench.common import PYTHON, ROOT, ServerProcess, machine, pin, pin_pid  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "ami"
CAPTURE = FIXTURES / "load_2cps_ami.raw.xz"
READS = FIXTURES / "load_2cps_ami.reads.txt.xz"
MANAGER_CONF = ROOT / "deploy" / "asterisk" / "manager.conf"
AMI_USER = "ccengine"
TARGET_MS = 3.0
SETTLE = 0.5            # seconds after the last event counted, for the engine's Redis writes
SMOKE_EVENTS = 6000
# main/manager.c perms[] (all but "all" and "none"), in that order.
CLASSES = ("system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
           "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
           "message")
_TRUE = {"yes", "true", "y", "t", "1", "on"}      # main/utils.c ast_true
_FALSE = {"no", "false", "n", "f", "0", "off"}    # main/utils.c ast_false


# --- the capture ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    at: float               # epoch of the recorder's read that completed this block
    block: bytes            # without the blank line
    name: str
    classes: frozenset[str]  # from `Privilege:` (minus "all")


def load_capture() -> list[Event]:
    """The capture's events, each with the time of the read that completed it (the login
    response, the only non-event packet, is left out: the stand-in answers the engine's own)."""
    from ccengine.ami.wire import BlockSplitter, Message
    raw = lzma.decompress(CAPTURE.read_bytes())
    reads = [line.split() for line in lzma.decompress(READS.read_bytes()).decode().splitlines()]
    if sum(int(size) for _, size in reads) != len(raw):
        raise SystemExit(f"{READS.name} does not add up to {CAPTURE.name}")
    splitter = BlockSplitter()
    events, offset = [], 0
    for at, size in reads:
        chunk = raw[offset:offset + int(size)]
        offset += int(size)
        for block in splitter.feed(chunk):
            message = Message.parse(block)
            if message.event is None:
                continue
            privilege = (message.get("Privilege") or "").split(",")
            events.append(Event(float(at), block, message.event,
                                frozenset(c for c in privilege if c and c != "all")))
    return events


# --- Asterisk's event selection (main/manager.c) ------------------------------------------------

def mask_of(text: str) -> frozenset[str]:
    """strings_to_mask / get_perm: a Login `Events:` value or a `read=` line as classes."""
    text = text.strip()
    if text.isdigit():
        raise ValueError("numeric event masks are not modelled")
    if text.lower() in _FALSE:
        return frozenset()
    if text.lower() in _TRUE:
        return frozenset(CLASSES)
    words = {w.strip().lower() for w in text.split(",")}
    return frozenset(CLASSES) if "all" in words else frozenset(c for c in CLASSES if c in words)


@dataclass(frozen=True)
class EventFilter:
    exclude: bool
    name: str | None        # name(...): compared by hash of the exact name
    header: str | None      # header(...), with its ":" appended as manager_add_filter does
    method: str             # regex / exact / starts_with / ends_with / contains / none
    pattern: str

    def matches(self, event: Event, text: str) -> bool:
        """filter_cmp_fn: the whole payload, or each line starting with the header (then the
        value after blanks, empty values skipped); the first matching line decides."""
        if self.name is not None and self.name != event.name:
            return False
        if self.header is None:
            return self._match(text)
        for line in text.split("\n"):
            line = line.removesuffix("\r")
            if line.startswith(self.header):
                value = line[len(self.header):].lstrip(" \t")
                if value and self._match(value):
                    return True
        return False

    def _match(self, data: str) -> bool:
        method, pattern = self.method, self.pattern
        if method == "regex":
            return re.search(pattern, data) is not None
        if method == "exact":
            return data == pattern
        if method == "starts_with":
            return data.startswith(pattern)
        if method == "ends_with":
            return data.endswith(pattern)
        if method == "contains":
            return pattern in data
        return True   # none


@dataclass(frozen=True)
class ManagerUser:
    """The parts of a manager.conf user that decide which events its sessions get."""
    read: frozenset[str]
    include: tuple[EventFilter, ...]
    excluded: tuple[EventFilter, ...]

    def sends(self, event: Event, login_events: str) -> bool:
        send_events = self.read & mask_of(login_events)   # set_eventmask
        if not event.classes <= send_events:
            return False
        text = event.block.decode("utf-8", "replace") + "\r\n\r\n"
        # should_send_event
        if not self.include and not self.excluded:
            return True
        included = (not self.include) or any(f.matches(event, text) for f in self.include)
        return included and not any(f.matches(event, text) for f in self.excluded)


def parse_filter(criteria: str, pattern: str) -> EventFilter:
    """manager_add_filter: a legacy filter (a regex over the payload, `!` = exclude) or an
    advanced one, `eventfilter(action(..),name(..),header(..),method(..))`."""
    exclude = pattern.startswith("!")
    if exclude:
        pattern = pattern[1:]
    if "(" not in criteria:
        return EventFilter(exclude, None, None, "regex", pattern)
    name = header = None
    method = "none"
    for option in re.split(r"[ ,)]+", criteria[criteria.index("(") + 1:]):
        if not option:
            continue
        key, _, value = option.partition("(")
        value = value.strip()
        if key == "action":
            exclude = value == "exclude"
        elif key == "name":
            name = value
        elif key == "header":
            header = value if value.endswith(":") else value + ":"
        elif key == "method":
            method = value
        else:
            raise ValueError(f"unknown eventfilter option {option!r}")
    return EventFilter(exclude, name, header, method, pattern)


def manager_user(path: Path, user: str) -> ManagerUser:
    section, read, filters = None, "", []
    for raw in path.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != user or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key == "read":
            read = value
        elif key.startswith("eventfilter"):
            filters.append(parse_filter(key, value))
    return ManagerUser(mask_of(read) if read else frozenset(),
                       tuple(f for f in filters if not f.exclude),
                       tuple(f for f in filters if f.exclude))


# --- the stand-in Asterisk --------------------------------------------------------------------

class StandIn:
    """Answers actions like tests/ami_server.py (recorded answers); after the Login, and once
    the variant's stream is released (`go`), sends it at the recorded pace."""

    def __init__(self, events: list[Event], user: ManagerUser | None, speed: float):
        import ami_server
        self.answers = ami_server.Server(Path(os.devnull))
        self.banner = ami_server.banner()
        self.events = events
        self.user = user
        self.speed = speed
        self.logged_in = asyncio.Event()
        self.go = asyncio.Event()
        self.sent: list[Event] = []
        self.login_events = ""
        self.started = self.finished = 0.0
        self.actions: list[str] = []

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.banner)
        streaming = None
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                pairs = [[k.strip(), v.strip()] for k, _, v in
                         (line.partition(":") for line in block.decode().split("\r\n") if line)]
                fields = {k.lower(): v for k, v in pairs}
                self.actions.append(fields.get("action", ""))
                writer.write(self.answers.answer(pairs))
                if fields.get("action", "").lower() == "login" and streaming is None:
                    self.login_events = fields.get("events", "")
                    self.logged_in.set()
                    streaming = asyncio.ensure_future(self.stream(writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if streaming is not None:
                streaming.cancel()
            writer.close()

    def selected(self) -> list[Event]:
        if self.user is None:
            return self.events
        return [e for e in self.events if self.user.sends(e, self.login_events)]

    async def stream(self, writer: asyncio.StreamWriter) -> None:
        events = self.selected()
        # One write per recorded read (events completed by the same read go together).
        batches: list[tuple[float, bytes, list[Event]]] = []
        for event in events:
            if batches and batches[-1][0] == event.at:
                at, data, group = batches[-1]
                batches[-1] = (at, data + event.block + b"\r\n\r\n", group + [event])
            else:
                batches.append((event.at, event.block + b"\r\n\r\n", [event]))
        await self.go.wait()
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.started = time.perf_counter()
        first = batches[0][0] if batches else 0.0
        for at, data, group in batches:
            if self.speed > 0:
                delay = start + (at - first) / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            writer.write(data)
            self.sent.extend(group)
            await writer.drain()
        self.finished = time.perf_counter()


# --- one variant ------------------------------------------------------------------------------

@dataclass
class Result:
    variant: str
    events: int
    calls: int
    wall: float
    cpu: float
    idle_rate: float           # engine CPU seconds per second, idle
    actions: list[str]

    @property
    def per_call_ms(self) -> float:
        return self.cpu / self.calls * 1000 if self.calls else float("nan")

    @property
    def idle_per_call_ms(self) -> float:
        return self.idle_rate * self.wall / self.calls * 1000 if self.calls else float("nan")


async def wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


async def run_variant(variant: str, events: list[Event], user: ManagerUser | None,
                      args, tmp: Path) -> Result:
    from ccengine.store.embedded import EmbeddedRedis
    stand_in = StandIn(events, user, args.speed)
    server = await asyncio.start_server(stand_in.client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    redis_server = EmbeddedRedis(tmp / f"redis-{variant}").start()
    engine = spy = None
    loop = asyncio.get_running_loop()
    try:
        pin_pid(redis_server.process.pid, 1)
        engine = await loop.run_in_executor(None, lambda: ServerProcess(
            "hotline", 0, "--redis-url", redis_server.url, "--state-dir",
            str(tmp / f"engine-{variant}"), "--ami-port", str(port)))
        if not await wait_for(stand_in.logged_in.is_set, 30):
            raise RuntimeError(f"{variant}: the engine did not log in")
        # Login, QueueStatus, the agents' resync and the first collections settle; then the
        # engine's idle cost (1.5 s was too short: idle figures of 2.5-8.5 ms/s).
        await asyncio.sleep(args.settle)
        before = await loop.run_in_executor(None, engine.ask, "stats")
        # Paced: at most the replay's own length. As fast as possible (a second or two):
        # --idle-seconds as given, scaled down, since 10 ms clock ticks need a long window.
        idle_window = args.idle_seconds if args.speed <= 0 else min(
            args.idle_seconds, max(1.0, estimated_wall(stand_in, args.speed)))
        cpu0, t0 = engine.cpu(), time.perf_counter()
        await asyncio.sleep(idle_window)
        idle_rate = (engine.cpu() - cpu0) / (time.perf_counter() - t0)
        if args.profile and variant == "filtered":
            # Non-blocking: the engine is not stopped for each sample (its CPU figure then
            # stays close to an unprofiled run's; stacks may be torn now and then).
            spy = subprocess.Popen([str(Path(PYTHON).parent / "py-spy"), "record", "--format",
                                    "raw", "--rate", "200", "--nonblocking", "--pid",
                                    str(engine.pid), "-o",
                                    str(Path(args.profile) / f"{variant}.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)
        cpu0 = engine.cpu()
        stand_in.go.set()
        expected = len(stand_in.selected()) + int(before.get("ami_events", 0))
        while not stand_in.finished:
            await asyncio.sleep(0.1)
        # Asked only after the stream: a stats request costs the engine CPU, too.
        counted = 0.0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counted = (await loop.run_in_executor(None, engine.ask, "stats"))["ami_events"]
            if counted >= expected:
                break
            await asyncio.sleep(0.1)
        handled = time.perf_counter()
        await asyncio.sleep(SETTLE)
        cpu = engine.cpu() - cpu0
        if counted < expected:
            print(f"FAIL {variant}: the engine counted {counted - before['ami_events']:.0f} of "
                  f"{len(stand_in.sent)} events", flush=True)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        sent = stand_in.sent
        calls = sum(1 for e in events if e.name == "QueueCallerJoin")
        return Result(variant, len(sent), calls, handled - stand_in.started + SETTLE, cpu,
                      idle_rate, stand_in.actions)
    finally:
        if engine is not None:
            await loop.run_in_executor(None, engine.stop)
        redis_server.stop()
        server.close()
        await server.wait_closed()


_LINE_NO = re.compile(r":\d+\)$")
# Leaf frames of a thread with nothing to do: the reactor waiting in epoll, the thread pool's
# idle workers. Left out, so the shares are of the engine's busy time.
_WAITING = ("EpollSelector.select (selectors.py)", "Condition.wait (threading.py)")


def busy_summary(raw: Path, top: int) -> list[str]:
    """Own and cumulative shares of py-spy's raw stacks, waiting stacks left out."""
    import collections
    own: collections.Counter = collections.Counter()
    cumulative: collections.Counter = collections.Counter()
    total = waiting = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [_LINE_NO.sub(")", frame) for frame in stack.split(";")]
        if frames[-1] in _WAITING:
            waiting += int(count)
            continue
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            cumulative[frame] += int(count)
    out = [f"{total} busy samples ({waiting} waiting left out)", "-- own --"]
    out += [f"{n / total:6.1%} {frame}" for frame, n in own.most_common(top)]
    out += ["-- cumulative --"]
    out += [f"{n / total:6.1%} {frame}" for frame, n in cumulative.most_common(top * 2)]
    return out


def estimated_wall(stand_in: StandIn, speed: float) -> float:
    if speed <= 0 or not stand_in.events:
        return 1.0
    return (stand_in.events[-1].at - stand_in.events[0].at) / speed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", type=float, default=1.0,
                        help="replay pace: 1 = recorded (110 s), 0 = as fast as the engine reads")
    parser.add_argument("--smoke", action="store_true",
                        help=f"the first {SMOKE_EVENTS} events, as fast as possible")
    parser.add_argument("--idle-seconds", type=float, default=20.0,
                        help="longest idle window measured (scaled to the replay's wall time)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds after the login before the idle window")
    parser.add_argument("--variants", default="unfiltered,filtered")
    parser.add_argument("--profile", help="directory: py-spy raw stacks of the filtered replay "
                        "(filtered.txt) and their summary")
    args = parser.parse_args()
    pin(1)
    events = load_capture()
    if args.smoke:
        events, args.speed, args.idle_seconds, args.settle = events[:SMOKE_EVENTS], 0.0, 1.0, 1.5
    user = manager_user(MANAGER_CONF, AMI_USER)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    pace = "as fast as the engine reads" if args.speed <= 0 else f"speed {args.speed:g}"
    print(f"# ccengine on a real AMI stream (transcripts3 load_2cps_ami), {machine()}; "
          f"{len(events)} events, {pace}; engine on core 0, stand-in and redis on core 1; "
          f"filtered = {MANAGER_CONF.relative_to(ROOT)} [{AMI_USER}] read="
          f"{','.join(sorted(user.read))}, {len(user.include)} include / {len(user.excluded)} "
          f"exclude eventfilters", flush=True)
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="ccbench-amireal-") as tmp:
        for variant in args.variants.split(","):
            result = asyncio.run(run_variant(variant, events, user if variant == "filtered"
                                             else None, args, Path(tmp)))
            results[variant] = result
            print(f"  {variant:>10}: {result.events} events ({result.events / result.calls:.1f}"
                  f"/call) for {result.calls} calls in {result.wall:.2f} s = "
                  f"{result.events / result.wall:.0f} events/s; engine CPU {result.cpu:.3f} s = "
                  f"{result.per_call_ms:.2f} ms/call, {result.cpu / max(result.events, 1) * 1e6:.0f}"
                  f" us/event; idle over the same wall time {result.idle_per_call_ms:.2f} ms/call "
                  f"({result.idle_rate * 1000:.1f} ms CPU/s), net of idle "
                  f"{result.per_call_ms - result.idle_per_call_ms:.2f} ms/call", flush=True)
    if args.profile and "filtered" in results:
        raw = Path(args.profile) / "filtered.txt"
        if raw.exists():
            summary = "\n".join(busy_summary(raw, 25))
            (Path(args.profile) / "filtered.summary.txt").write_text(summary + "\n")
            print(summary)
    if "unfiltered" in results and "filtered" in results:
        u, f = results["unfiltered"], results["filtered"]
        print(f"filtered/unfiltered: events {f.events / u.events:.3f}, CPU per call "
              f"{f.per_call_ms / u.per_call_ms:.3f}")
    if "filtered" in results:
        f = results["filtered"]
        if args.smoke:
            print(f"INFO smoke run: filtered {f.per_call_ms:.2f} ms CPU per call")
        else:
            # Only the recorded pace holds the engine's timers of a real day's seconds; as
            # fast as possible the figure is the events' own cost.
            pace = "recorded pace" if args.speed == 1 else (
                "as fast as possible, timers of ~1 s only" if args.speed <= 0
                else f"{args.speed:g} x the recorded pace")
            print(f"{'PASS' if f.per_call_ms <= TARGET_MS else 'FAIL'} engine CPU per call, "
                  f"filtered replay ({pace}): {f.per_call_ms:.2f} ms <= {TARGET_MS:g} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
