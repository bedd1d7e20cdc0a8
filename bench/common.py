"""Shared helpers of the benchmarks: CPU pinning, per-process CPU from /proc, percentiles,
the FastAGI environment block of a real call, server child processes.

Nothing here is imported by the engine; the benchmarks run as scripts (`bench/` is on
sys.path when `python bench/agi.py` runs).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Key order and values of tests/fixtures/agi/agi1_suite.from_asterisk.bin (Asterisk 22.10.1,
# call 5001 in context hotline, ../shared/asterisk/transcripts2): the block a real call sends.
_ENV_KEYS = (
    ("agi_network", b"yes"), ("agi_network_script", None), ("agi_request", None),
    ("agi_channel", b"PJSIP/caller-00000000"), ("agi_language", b"en"), ("agi_type", b"PJSIP"),
    ("agi_uniqueid", None), ("agi_version", b"22.10.1"), ("agi_callerid", None),
    ("agi_calleridname", None), ("agi_callingpres", b"0"), ("agi_callingani2", b"0"),
    ("agi_callington", b"0"), ("agi_callingtns", b"0"), ("agi_dnid", b"5001"),
    ("agi_rdnis", b"unknown"), ("agi_context", b"hotline"), ("agi_extension", b"5001"),
    ("agi_priority", b"2"), ("agi_enhanced", b"0.0"), ("agi_accountcode", b""),
    ("agi_threadid", b"140424173049536"),
)


def environment_block(script: str, uniqueid: str, callerid: str,
                      calleridname: str = "CC Caller", channel_no: int = 0,
                      args: tuple[str, ...] = (), channel: str = "") -> bytes:
    """The agi_* block Asterisk sends first (`\\n` line ends, blank line last, agi1_suite);
    `args` become agi_arg_1... after agi_threadid (agi3_env_args: `AGI(agi://.../route,arg1,
    arg two)`); `channel` replaces the caller's channel name (an agent phone's, say)."""
    values = {
        "agi_network_script": script.encode(),
        "agi_request": b"agi://127.0.0.1:4573/" + script.encode(),
        "agi_uniqueid": uniqueid.encode(),
        "agi_callerid": callerid.encode(),
        "agi_calleridname": calleridname.encode(),
        "agi_channel": channel.encode() if channel else b"PJSIP/caller-%08x" % channel_no,
    }
    lines = [key.encode() + b": " + values.get(key, default) for key, default in _ENV_KEYS]
    lines += [b"agi_arg_%d: %s" % (i, arg.encode()) for i, arg in enumerate(args, 1)]
    return b"\n".join(lines) + b"\n\n"


def pin(cpu: int | None) -> None:
    """Pin this process to one core (when the machine has it)."""
    if cpu is not None and cpu < os.cpu_count():
        os.sched_setaffinity(0, {cpu})


def pin_pid(pid: int, cpu: int | None) -> None:
    if cpu is not None and cpu < os.cpu_count():
        os.sched_setaffinity(pid, {cpu})


def process_cpu(pid: int) -> float:
    """User+system CPU seconds of a process (and its threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


class ChildProcess:
    """A bench child speaking JSON lines: started with `cmd`, its first stdout line a JSON
    object (its port, ...); asked on stdin (`ask`), stopped by closing stdin."""

    def __init__(self, cmd: list[str], what: str) -> None:
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        cwd=ROOT, text=True, bufsize=1)
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{what} did not start (exit {self.process.wait()})")
        self.ready: dict = json.loads(line)   # the hotline's also names its http_port
        self.port: int = self.ready["port"]
        self.pid: int = self.process.pid

    def ask(self, command: str) -> dict:
        """One control request on the child's stdin, one JSON line back."""
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class ServerProcess(ChildProcess):
    """A benchmark server child (bench/servers.py): started, pinned, asked for its stats."""

    def __init__(self, kind: str, cpu: int | None, *args: str) -> None:
        self.kind = kind
        super().__init__([PYTHON, str(BENCH / "servers.py"), kind, "--cpu",
                          str(cpu if cpu is not None else -1), *args], f"server {kind}")


class ReplayRoute:
    """A FastAGI route that sends recorded command lines and nothing else: the engine's AGI
    plumbing with no route logic (servers.py framework, inproc_hotline.py)."""

    def __init__(self, commands: list[bytes]) -> None:
        self.commands = commands

    async def handle(self, channel) -> None:
        for command in self.commands:
            await channel._command(command)

    async def on_watchdog(self, channel) -> None:
        pass


def paired_ratios(mine: list[float], theirs: list[float]) -> tuple[float, str]:
    """The median of two servers' round-by-round ratios, and their spread as text. The two ran
    minutes apart at most in each round, so the machine's drift over the run cancels out of
    each ratio (bench/agi.py judges its closed-loop targets this way)."""
    ratios = [a / b for a, b in zip(mine, theirs) if b]
    if not ratios:
        return 0.0, "no rounds"
    return statistics.median(ratios), f"rounds {min(ratios):.2f}-{max(ratios):.2f}"


class LagSampler:
    """How late the reactor runs a timer that asks to be called every `interval` seconds: the
    lag an AGI command arriving at that moment would have waited (a blocking call on the
    reactor, a burst of AMI events, the garbage collector). Each firing records its lateness
    against the time it was due; the next one is due `interval` after the firing, so a long
    stall counts once, at its full length (the engine's own ReactorLagProbe does the same every
    250 ms for its histogram; this one samples 25 times as often and keeps every value).

    `dump(path)` writes `{"t": [...], "lag_ms": [...]}`: when each timer was due (the clock's
    seconds; the reactor's are epoch seconds) and how late it ran, in milliseconds (servers.py
    hotline `--lag FILE`, at shutdown), so a reader can keep the samples of its own window."""

    def __init__(self, clock, interval: float = 0.010) -> None:
        from array import array
        self.clock = clock
        self.interval = interval
        self.values = array("d")
        self.due = array("d")
        self._call = None
        self._due = 0.0

    def start(self) -> None:
        self._due = self.clock.seconds() + self.interval
        self._call = self.clock.callLater(self.interval, self._fired)

    def _fired(self) -> None:
        now = self.clock.seconds()
        self.values.append(max(0.0, now - self._due))
        self.due.append(self._due)
        self._due = now + self.interval
        self._call = self.clock.callLater(self.interval, self._fired)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"t": [round(t, 4) for t in self.due],
                                          "lag_ms": [round(v * 1000, 4) for v in self.values]}))


def rss_kib(pid: int) -> int:
    """Resident set size of a process (VmRSS, KiB) from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    return 0
