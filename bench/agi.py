"""FastAGI benchmark: the engine's hotline route against a bare Twisted server and panoramisk
with the hotline's Redis work (panoramisk-redis), all playing the same command sequence,
interleaved in one run (ratios, not absolute figures). panoramisk without Redis is in the
table as information only: it does less work than the hotline, no target compares with it.

Each server is its own process pinned to core 0; this process (the load generator, and the
embedded redis-server it starts) is pinned to core 1. Rounds alternate the servers (order
rotated each round); each figure is the median over the rounds, and each ratio the median of
the ratios within each round (printed with their spread). CPU/call is the server's CPU over the
figure's sessions.

    .venv/bin/python bench/agi.py            # 3 rounds x 5 s per figure (about 4 minutes)
    .venv/bin/python bench/agi.py --quick    # 2 rounds x 2 s (about 1.5 minutes)
    .venv/bin/python bench/agi.py --smoke    # a few hundred sessions (seconds), no verdicts

Targets (issue 20): closed loop 50 and 500 hotline >= 1.2 x panoramisk-redis and >= 0.85 x
bare (sessions/s); open loop 500/s hotline command p99 <= 5 ms, whole-call p99 <= 10 ms and
<= 1.5 x bare's in the same round, no failed session; Redis <= 2 round trips on the critical
path and <= 20 commands per call; a TCP health check (connect, close before the environment)
costs nothing and leaves nothing running.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (ServerProcess, machine, open_fds, paired_ratios, pin,  # noqa: E402
                          pin_pid)
from bench.loadgen import Result, Workload, closed_loop, health_checks, open_loop  # noqa: E402
from bench.redis_calls import critical_path, measure, report, seed_callers  # noqa: E402

KINDS = ("hotline", "bare", "panoramisk-redis", "panoramisk")
INFORMATION = "panoramisk"       # no Redis work: in the table and a ratio, no verdict
CLOSED_TARGETS = (("panoramisk-redis", 1.2), ("bare", 0.85))   # hotline >= target x other
CMD_P99_MS, CALL_P99_MS, CALL_P99_VS_BARE = 5.0, 10.0, 1.5
TIMEOUT = 5.0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def run_load(server: ServerProcess, load: tuple[str, float], seconds: float,
                   workload: Workload) -> tuple[Result, float]:
    """One figure; also the server's CPU share during it."""
    mode, amount = load
    cpu0, t0 = server.cpu(), time.perf_counter()
    if mode == "closed":
        result = await closed_loop("127.0.0.1", server.port, int(amount), seconds, workload,
                                   label=f"{server.kind:>16} closed {int(amount):>4}")
    else:
        result = await open_loop("127.0.0.1", server.port, amount, seconds, workload,
                                 label=f"{server.kind:>16} open {int(amount):>4}/s")
    return result, (server.cpu() - cpu0) / (time.perf_counter() - t0)


def cpu_ms_per_call(result: Result, cpu: float) -> float:
    """The server's CPU per session of a figure (its CPU share over the measured seconds)."""
    return cpu * result.seconds / result.ok * 1000 if result.ok else float("nan")


def median_result(results: list[tuple[Result, float]]) -> dict:
    rs = [r for r, _ in results]
    return {
        "rate": statistics.median(r.rate for r in rs),
        "cmd_p50": statistics.median(r.ms("command", .5) for r in rs),
        "cmd_p99": statistics.median(r.ms("command", .99) for r in rs),
        "call_p50": statistics.median(r.ms("call", .5) for r in rs),
        "call_p99": statistics.median(r.ms("call", .99) for r in rs),
        "failed": sum(r.failed for r in rs),
        "server_cpu": statistics.median(c for _, c in results),
        "cpu_ms_per_call": statistics.median(cpu_ms_per_call(r, c) for r, c in results),
        "loadgen_cpu": statistics.median(r.loadgen_cpu for r in rs),
    }


def health_check(server: ServerProcess, count: int) -> tuple[bool, str]:
    """`count` connect-and-close clients: CPU per check, idle CPU after, leftovers."""
    before = server.ask("stats")
    fds0 = open_fds(server.pid)
    cpu0 = server.cpu()
    failures = asyncio.run(health_checks("127.0.0.1", server.port, count))
    time.sleep(0.3)
    burst_cpu = server.cpu() - cpu0
    cpu1 = server.cpu()
    time.sleep(1.0)
    idle = server.cpu() - cpu1
    after = server.ask("stats")
    fds1 = open_fds(server.pid)
    per_check_ms = burst_cpu / count * 1000
    # Left behind = more after than before; a timer of an earlier call that came due during
    # the checks (fewer after) is not something the checks left running.
    leftovers = {k: (before[k], after[k]) for k in ("delayed_calls", "tasks", "sessions")
                 if before[k] is not None and after[k] > before[k]}
    ok = (failures == 0 and idle <= 0.02 and per_check_ms <= 0.5 and not leftovers
          and fds1 <= fds0)
    return ok, (f"{server.kind}: {count} health checks: {per_check_ms:.3f} ms CPU each, "
                f"{idle:.0%} of a core in the second after, fds {fds0}->{fds1}, "
                f"timers/tasks/sessions {_counts(before)} -> {_counts(after)}"
                f"{', failed connects ' + str(failures) if failures else ''}")


def _counts(stats: dict) -> tuple:
    return stats["delayed_calls"], stats["tasks"], stats["sessions"]


def capture_sequence(port: int, workload: Workload) -> list[str]:
    """The command lines one hotline call sends (played by the baselines)."""
    probe = Workload(workload.script, workload.callers[1:2], workload.menu_key, TIMEOUT,
                     record=True)
    result = asyncio.run(closed_loop("127.0.0.1", port, 1, 0.05, probe, warmup=0))
    if not result.recorded or result.failed:
        raise RuntimeError(f"could not record a hotline call: {result.line()}")
    return [line.decode() for line in result.recorded[0]]


def baseline(kind: str, sequence: Path, redis_url: str) -> ServerProcess:
    """A server of `kind` playing the recorded sequence (with Redis for the *-redis kinds)."""
    extra = ("--redis-url", redis_url) if kind.endswith("-redis") else ()
    return ServerProcess(kind, 0, "--sequence", str(sequence), *extra)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--smoke", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=float, help="measured seconds per figure")
    args = parser.parse_args()
    if args.smoke:
        rounds, seconds = 1, 0.3
        loads = [("closed", 5), ("closed", 20), ("open", 50), ("open", 100)]
        checks = 50
    else:
        rounds, seconds = (2, 2.0) if args.quick else (3, 5.0)
        loads = [("closed", 50), ("closed", 500), ("open", 100), ("open", 500)]
        checks = 1000
    rounds = args.rounds or rounds
    seconds = args.seconds or seconds
    pin(1)
    print(f"# ccengine FastAGI bench {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{machine()}; servers on core 0, load generator + redis-server on core 1; "
          f"{rounds} rounds x {seconds:g} s")
    from ccengine.store.embedded import EmbeddedRedis
    servers: dict[str, ServerProcess] = {}
    with tempfile.TemporaryDirectory(prefix="ccbench-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            pin_pid(redis_server.process.pid, 1)
            workload = Workload(callers=seed_callers(redis_server.url), timeout=TIMEOUT)
            servers["hotline"] = ServerProcess("hotline", 0, "--redis-url", redis_server.url,
                                               "--state-dir", str(Path(tmp) / "engine"))
            sequence = capture_sequence(servers["hotline"].port, workload)
            seq_file = Path(tmp) / "sequence.json"
            seq_file.write_text(json.dumps(sequence))
            print(f"# one call = {len(sequence)} commands: " + " | ".join(sequence))
            for kind in KINDS[1:]:
                servers[kind] = baseline(kind, seq_file, redis_server.url)
            figures = run_rounds(servers, loads, rounds, seconds, workload)
            lines = summarise(figures, loads, smoke=args.smoke)
            found = measure(redis_server.url, servers["hotline"].port, workload,
                            30 if args.smoke else 200)
            critical = critical_path(redis_server.host, redis_server.port, workload,
                                     str(Path(tmp) / "engine-proxied"), 20 if args.smoke else 60)
            lines += report(found, critical)
            ok, text = health_check(servers["hotline"], checks)
            print("# " + text)
            lines.append(f"{verdict(ok)} health check costs nothing and leaves nothing running "
                         f"(hotline)")
            # Reference only: panoramisk reads the environment in a loop that never sees EOF.
            pan = servers["panoramisk"]
            cpu0 = pan.cpu()
            asyncio.run(health_checks("127.0.0.1", pan.port, 1))
            time.sleep(1.0)
            print(f"# panoramisk after ONE health check: {pan.cpu() - cpu0:.0%} of a core "
                  f"in the next second (reference)")
            print("\n".join(lines))
        finally:
            for server in servers.values():
                server.stop()
            redis_server.stop()
    return 0


def run_rounds(servers, loads, rounds, seconds, workload) -> dict:
    figures: dict[tuple[str, tuple], list] = {}
    order = list(KINDS)
    for n in range(rounds):
        print(f"# round {n + 1}/{rounds}")
        for kind in order:
            for load in loads:
                result, cpu = asyncio.run(run_load(servers[kind], load, seconds, workload))
                print(f"  {result.line()}  server cpu {cpu:.0%}", flush=True)
                figures.setdefault((kind, load), []).append((result, cpu))
        order = order[1:] + order[:1]
    return figures


def summarise(figures: dict, loads: list, smoke: bool) -> list[str]:
    med = {key: median_result(values) for key, values in figures.items()}
    print("\n| server | load | sessions/s | cmd p50/p99 ms | call p50/p99 ms | failed "
          "| server CPU | CPU/call ms | loadgen CPU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (kind, (mode, amount)), m in med.items():
        load = f"closed {amount}" if mode == "closed" else f"open {amount}/s"
        name = f"{kind} (information)" if kind == INFORMATION else kind
        print(f"| {name} | {load} | {m['rate']:.0f} | {m['cmd_p50']:.2f} / {m['cmd_p99']:.2f} "
              f"| {m['call_p50']:.2f} / {m['call_p99']:.2f} | {m['failed']} "
              f"| {m['server_cpu']:.0%} | {m['cpu_ms_per_call']:.3f} | {m['loadgen_cpu']:.0%} |")
    print()
    lines = []
    for load in loads:
        if load[0] != "closed":
            continue
        rates = {kind: [result.rate for result, _ in figures[(kind, load)]] for kind in KINDS}
        for other, target in CLOSED_TARGETS:
            ratio, spread = paired_ratios(rates["hotline"], rates[other])
            print(f"ratio closed {load[1]}: hotline/{other} {ratio:.2f} ({spread})")
            if not smoke:
                lines.append(f"{verdict(ratio >= target)} closed {load[1]}: hotline >= "
                             f"{target} x {other} ({ratio:.2f}; {spread})")
        ratio, spread = paired_ratios(rates["hotline"], rates[INFORMATION])
        print(f"ratio closed {load[1]}: hotline/{INFORMATION} {ratio:.2f} ({spread}; "
              f"information: {INFORMATION} does no Redis work)")
    top_open = max(load for load in loads if load[0] == "open")
    m = med[("hotline", top_open)]
    call_p99 = {kind: [result.ms("call", .99) for result, _ in figures[(kind, top_open)]]
                for kind in ("hotline", "bare")}
    vs_bare, spread = paired_ratios(call_p99["hotline"], call_p99["bare"])
    print(f"ratio open {top_open[1]}/s: whole-call p99 hotline/bare {vs_bare:.2f} ({spread})")
    label = f"open {top_open[1]}/s hotline"
    if smoke:
        lines.append(f"INFO {label}: cmd p99 {m['cmd_p99']:.2f} ms, call p99 "
                     f"{m['call_p99']:.2f} ms ({vs_bare:.2f} x bare), failed {m['failed']}")
    else:
        lines.append(f"{verdict(m['cmd_p99'] <= CMD_P99_MS)} {label}: command p99 "
                     f"{m['cmd_p99']:.2f} <= {CMD_P99_MS:g} ms")
        lines.append(f"{verdict(m['call_p99'] <= CALL_P99_MS)} {label}: whole-call p99 "
                     f"{m['call_p99']:.2f} <= {CALL_P99_MS:g} ms")
        lines.append(f"{verdict(vs_bare <= CALL_P99_VS_BARE)} {label}: whole-call p99 <= "
                     f"{CALL_P99_VS_BARE:g} x bare's ({vs_bare:.2f}; {spread})")
        lines.append(f"{verdict(m['failed'] == 0)} {label}: no failed session "
                     f"({m['failed']} failed)")
    return lines


if __name__ == "__main__":
    sys.exit(main())
