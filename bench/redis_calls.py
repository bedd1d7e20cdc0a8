"""Redis round trips and commands per routed hotline call, counted by Redis itself.

Calls run one at a time (closed loop, 1 caller), so every request Redis reads from the
engine is a round trip the call waits for: the session only closes (and the dialplan only
goes on to Queue()) after the route's last Redis step. Counted from `INFO stats`
(`total_reads_processed`) and `INFO commandstats` before and after N calls; our own INFO and
the engine's 5-second health PING are subtracted.

    .venv/bin/python bench/redis_calls.py [--calls 200]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ServerProcess, pin, pin_pid  # noqa: E402
from bench.loadgen import Workload, closed_loop  # noqa: E402

MAX_ROUND_TRIPS = 2
MAX_COMMANDS = 20
_OURS = ("cmdstat_info", "cmdstat_ping")


def seed_callers(redis_url: str, count: int = 1000) -> list[tuple[str, str]]:
    """Known customers (every tenth a VIP) as cc:customer:* hashes; returns the caller pool."""
    import redis
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    callers = []
    with client.pipeline(transaction=False) as p:
        for i in range(count):
            number = f"1380000{i:04d}"
            name = f"客户 {i}"
            vip = i % 10 == 0
            p.hset(f"cc:customer:{number}", mapping={"name": name,
                                                     "tier": "vip" if vip else "known"})
            if vip:
                p.sadd("cc:vip", number)
            callers.append((number, name))
        p.execute()
    client.close()
    return callers


def _counts(client) -> tuple[int, dict[str, int]]:
    stats = client.info("stats")
    commands = {k: v["calls"] for k, v in client.info("commandstats").items()}
    return stats["total_reads_processed"], commands


def measure(redis_url: str, port: int, workload: Workload, calls: int) -> dict:
    """Run `calls` sequential calls against the engine on `port`; Redis work per call."""
    import redis
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    asyncio.run(closed_loop("127.0.0.1", port, 1, 0.2, workload, warmup=0))   # warm the pool
    reads0, cmds0 = _counts(client)
    result = asyncio.run(_exact_calls(port, workload, calls))
    reads1, cmds1 = _counts(client)
    client.close()
    delta = {k.removeprefix("cmdstat_"): v - cmds0.get(k, 0) for k, v in cmds1.items()
             if k not in _OURS and v != cmds0.get(k, 0)}
    pings = cmds1.get("cmdstat_ping", 0) - cmds0.get("cmdstat_ping", 0)
    # The second INFO pair's reads: the 'stats' INFO is read before it answers (1), the
    # 'commandstats' INFO of the first pair after it (1).
    reads = reads1 - reads0 - 2 - pings
    ok = result
    return {"calls": ok, "round_trips": reads / ok if ok else float("nan"),
            "commands": sum(delta.values()) / ok if ok else float("nan"),
            "by_command": {k: round(v / ok, 2) for k, v in sorted(delta.items())} if ok else {}}


async def _exact_calls(port: int, workload: Workload, calls: int) -> int:
    """Exactly `calls` calls, one after the other; returns how many were routed."""
    from bench.loadgen import AgiSession, Result, _Calls, _Collector
    loop = asyncio.get_running_loop()
    made = _Calls(workload)
    result = Result("redis", 1)
    collector = _Collector(result, (0, float("inf")))
    for _ in range(calls):
        finished = loop.create_future()
        session = AgiSession(made.env(), made.digit_reply, 0, workload.timeout, collector,
                             finished, False)
        await loop.create_connection(lambda: session, "127.0.0.1", port)
        await finished
    return result.ok


def report(found: dict) -> list[str]:
    rt, cmds = found["round_trips"], found["commands"]
    return [
        f"redis per routed call ({found['calls']} sequential calls): {rt:.2f} round trips, "
        f"{cmds:.1f} commands {found['by_command']}",
        f"{'PASS' if rt <= MAX_ROUND_TRIPS + 0.05 else 'FAIL'} redis round trips on the critical "
        f"path {rt:.2f} <= {MAX_ROUND_TRIPS}",
        f"{'PASS' if cmds <= MAX_COMMANDS else 'FAIL'} redis commands per call {cmds:.1f} "
        f"<= {MAX_COMMANDS}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="20 calls")
    args = parser.parse_args()
    from ccengine.store.embedded import EmbeddedRedis
    pin(1)
    with tempfile.TemporaryDirectory(prefix="ccbench-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis").start()
        server = None
        try:
            pin_pid(redis_server.process.pid, 1)
            callers = seed_callers(redis_server.url)
            server = ServerProcess("hotline", 0, "--redis-url", redis_server.url,
                                   "--state-dir", str(Path(tmp) / "engine"))
            found = measure(redis_server.url, server.port, Workload(callers=callers),
                            20 if args.smoke else args.calls)
            for line in report(found):
                print(line)
        finally:
            if server is not None:
                server.stop()
            redis_server.stop()


if __name__ == "__main__":
    main()
