"""Before/after: the hotline of another checkout against this one, interleaved in one run.

On a shared machine two separate runs of bench/agi.py differ by more than an optimisation is
worth; this runs both engines (and the bare Twisted baseline) in the same rounds, so their
figures are comparable. The other checkout is a plain export, e.g.
`mkdir /tmp/old && git archive <commit> | tar -x -C /tmp/old`.

    .venv/bin/python bench/ab_hotline.py /tmp/old [--rounds 3] [--seconds 5] [--closed 50]
        [--extra framework|framework-redis|statemachine|panoramisk|panoramisk-redis]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402
from bench.agi import baseline, capture_sequence, run_load  # noqa: E402
from bench.common import ServerProcess, paired_ratios, pin, pin_pid  # noqa: E402
from bench.loadgen import Workload  # noqa: E402
from bench.redis_calls import seed_callers  # noqa: E402


class OtherCheckout(ServerProcess):
    """A server started from another checkout's bench/servers.py (it imports its own engine)."""

    def __init__(self, root: Path, kind: str, cpu: int, *args: str) -> None:
        saved = common.BENCH, common.ROOT
        common.BENCH, common.ROOT = root / "bench", root
        try:
            super().__init__(kind, cpu, *args)
        finally:
            common.BENCH, common.ROOT = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("other", type=Path, help="root of the other checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--closed", type=int, action="append")
    parser.add_argument("--extra", action="append", default=[],
                        choices=("framework", "framework-redis", "statemachine",
                                 "panoramisk", "panoramisk-redis"),
                        help="also run this server on the same sequence (see servers.py)")
    args = parser.parse_args()
    loads = [("closed", c) for c in (args.closed or [50])]
    from ccengine.store.embedded import EmbeddedRedis
    pin(1)
    with tempfile.TemporaryDirectory(prefix="ccbench-ab-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis").start()
        servers: dict[str, ServerProcess] = {}
        try:
            pin_pid(redis_server.process.pid, 1)
            workload = Workload(callers=seed_callers(redis_server.url))
            servers["this"] = ServerProcess("hotline", 0, "--redis-url", redis_server.url,
                                            "--state-dir", str(Path(tmp) / "this"))
            servers["other"] = OtherCheckout(args.other.resolve(), "hotline", 0, "--redis-url",
                                             redis_server.url, "--state-dir",
                                             str(Path(tmp) / "other"))
            seq_file = Path(tmp) / "sequence.json"
            seq_file.write_text(json.dumps(capture_sequence(servers["this"].port, workload)))
            for kind in ["bare", *args.extra]:
                servers[kind] = baseline(kind, seq_file, redis_server.url)
            rates: dict[tuple, list[float]] = {}
            cpu_per_call: dict[tuple, list[float]] = {}
            gc_share: dict[tuple, list[float]] = {}
            for n in range(args.rounds):
                order = list(servers) if n % 2 == 0 else list(reversed(servers))
                for name in order:
                    for load in loads:
                        gc_before = servers[name].ask("stats").get("gc_seconds", float("nan"))
                        result, cpu = asyncio.run(run_load(servers[name], load, args.seconds,
                                                           workload))
                        gc_cpu = servers[name].ask("stats").get("gc_seconds", float("nan")) - gc_before
                        gc_share.setdefault((name, load), []).append(
                            gc_cpu / (cpu * args.seconds) if cpu else float("nan"))
                        rate = result.ok / args.seconds
                        rates.setdefault((name, load), []).append(rate)
                        cpu_per_call.setdefault((name, load), []).append(
                            cpu * args.seconds / result.ok * 1000 if result.ok else float("nan"))
                        print(f"  round {n + 1} {name:>5} {load[0]} {load[1]}: {rate:7.0f} "
                              f"sessions/s, server cpu {cpu:.0%} (garbage collector "
                              f"{gc_share[(name, load)][-1]:.1%} of it)", flush=True)
            for load in loads:
                med = {name: statistics.median(rates[(name, load)]) for name in servers}
                ms = {name: statistics.median(cpu_per_call[(name, load)]) for name in servers}
                gcs = {name: statistics.median(gc_share[(name, load)]) for name in servers}
                print(f"{load[0]} {load[1]}: " + ", ".join(
                    f"{name} {med[name]:.0f}/s ({ms[name]:.2f} ms CPU/call, gc {gcs[name]:.1%})"
                    for name in servers))
                print(f"  this/other {med['this'] / med['other']:.2f}; "
                      f"this/bare {med['this'] / med['bare']:.2f}; "
                      f"other/bare {med['other'] / med['bare']:.2f}")
                # As bench/agi.py judges its targets: the median of the ratios within each
                # round, with their range.
                for ref in [r for r in ("bare", "panoramisk-redis", "panoramisk")
                            if r in servers]:
                    print(f"  per-round ratios to {ref}: " + "; ".join(
                        "{} {:.2f} ({})".format(name, *paired_ratios(rates[(name, load)],
                                                                     rates[(ref, load)]))
                        for name in servers if name != ref))
        finally:
            for server in servers.values():
                server.stop()
            redis_server.stop()


if __name__ == "__main__":
    main()
