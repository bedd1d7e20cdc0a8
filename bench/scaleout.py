"""Hotline throughput with 1, 2 and 3 engines on one shared Redis (issue 23).

Each engine is a real `ccengine run` process (AMI off: the hotline path only); one load
generator process per engine (bench/loadgen.py, closed loop) drives it, all at once, and the
sessions per second are added up. The three configurations run interleaved, `--rounds` times,
and the medians are printed as ratios to one engine. On a 2-core machine this shows the
overhead of more processes (loadgens included), not the gain a bigger machine would see.

    .venv/bin/python bench/scaleout.py [--rounds 3] [--seconds 5] [--closed 48] [--smoke]
"""
from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ccengine.store.embedded import EmbeddedRedis, free_port  # noqa: E402

RATE = re.compile(r":\s+(\d+) sessions/s\s+ok=(\d+) failed=(\d+)")


def start_engines(count: int, tmp: Path, redis_url: str) -> list[tuple[subprocess.Popen, int]]:
    out = []
    for n in range(count):
        agi = free_port()
        config = tmp / f"e{count}-{n}.toml"
        config.write_text(f'[engine]\nid = "e{n}"\nstate_dir = "{tmp / f"s{count}-{n}"}"\n'
                          f'[redis]\nurl = "{redis_url}"\n[ami]\nenabled = false\n'
                          f'[http]\nport = {free_port()}\n[fastagi]\nport = {agi}\n',
                          encoding="utf-8")
        proc = subprocess.Popen([sys.executable, "-m", "ccengine.cli", "run", "--config",
                                 str(config)], cwd=tmp, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        out.append((proc, agi))
    for _, port in out:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
    return out


def run_round(engines: list[tuple[subprocess.Popen, int]], closed: int,
              seconds: float) -> tuple[float, int]:
    per_engine = max(1, closed // len(engines))
    loads = [subprocess.Popen([sys.executable, str(ROOT / "bench" / "loadgen.py"), "--port",
                               str(port), "--closed", str(per_engine), "--duration",
                               str(seconds)], stdout=subprocess.PIPE, text=True)
             for _, port in engines]
    total, failed = 0.0, 0
    for load in loads:
        out, _ = load.communicate(timeout=seconds + 60)
        match = RATE.search(out)
        if match is None:
            raise SystemExit(f"loadgen output not understood: {out!r}")
        total += float(match.group(1))
        failed += int(match.group(3))
    return total, failed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--closed", type=int, default=48)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    rounds, seconds = (1, 1.0) if args.smoke else (args.rounds, args.seconds)
    results: dict[int, list[float]] = {1: [], 2: [], 3: []}
    failures = 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = EmbeddedRedis(tmp / "redis").start()
        fleets = {n: start_engines(n, tmp, redis.url) for n in results}
        try:
            for _ in range(rounds):
                for count, engines in fleets.items():
                    rate, failed = run_round(engines, args.closed, seconds)
                    results[count].append(rate)
                    failures += failed
        finally:
            for engines in fleets.values():
                for proc, _ in engines:
                    proc.terminate()
                    proc.wait(20)
            redis.stop()
    base = statistics.median(results[1])
    for count, rates in results.items():
        median = statistics.median(rates)
        print(f"{count} engine(s), closed {args.closed} in all: {median:7.0f} sessions/s "
              f"(rounds {', '.join(f'{r:.0f}' for r in rates)}), ratio to 1 engine "
              f"{median / base:.2f}")
    print(f"failed sessions: {failures}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
