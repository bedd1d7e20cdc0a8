"""Profile the hotline server under load with py-spy (sampling, no code change in the engine).

Starts an embedded redis-server (core 1), seeds the caller pool, starts `servers.py hotline`
(core 0), attaches `py-spy record` to it, drives a closed loop (core 1) and writes the
profile, then prints the top functions by own and cumulative share of samples.

    .venv/bin/python bench/profile_hotline.py [--closed 50] [--seconds 10] [--out FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import PYTHON, ServerProcess, pin, pin_pid  # noqa: E402
from bench.loadgen import Workload, closed_loop  # noqa: E402
from bench.redis_calls import seed_callers  # noqa: E402

PY_SPY = Path(PYTHON).parent / "py-spy"
_LINE_NO = re.compile(r":\d+\)$")


def summarise(raw: Path, top: int) -> list[str]:
    """Own and cumulative shares from py-spy's raw (collapsed stack) output."""
    own: collections.Counter = collections.Counter()
    cumulative: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        # Frames as `function (file)`: line numbers would split one function into many rows.
        frames = [_LINE_NO.sub(")", frame) for frame in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            cumulative[frame] += n
    out = [f"{total} samples", "-- own --"]
    out += [f"{n / total:6.1%} {frame}" for frame, n in own.most_common(top)]
    out += ["-- cumulative --"]
    out += [f"{n / total:6.1%} {frame}" for frame, n in cumulative.most_common(top * 2)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--closed", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "ccengine-prof.txt"),
                        help="py-spy's raw stacks (default: in the temp dir, not the checkout)")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    from ccengine.store.embedded import EmbeddedRedis
    pin(1)
    out = Path(args.out).resolve()
    with tempfile.TemporaryDirectory(prefix="ccbench-prof-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis").start()
        server = None
        try:
            pin_pid(redis_server.process.pid, 1)
            workload = Workload(callers=seed_callers(redis_server.url))
            server = ServerProcess("hotline", 0, "--redis-url", redis_server.url,
                                   "--state-dir", str(Path(tmp) / "engine"))
            asyncio.run(closed_loop("127.0.0.1", server.port, args.closed, 1.0, workload))
            spy = subprocess.Popen([str(PY_SPY), "record", "--format", "raw", "--rate", "500",
                                    "--pid", str(server.pid), "--duration",
                                    str(int(args.seconds) + 1), "-o", str(out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            result = asyncio.run(closed_loop("127.0.0.1", server.port, args.closed,
                                             args.seconds, workload))
            spy.wait(60)
            print(result.line())
        finally:
            if server is not None:
                server.stop()
            redis_server.stop()
    print("\n".join(summarise(out, args.top)))


if __name__ == "__main__":
    main()
