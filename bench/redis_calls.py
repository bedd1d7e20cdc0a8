"""Redis round trips and commands per routed hotline call.

- Per call in total, counted by Redis itself: calls run one at a time (closed loop, 1 caller),
  so every request Redis reads from the engine is a round trip of that call, waited for or
  not. Counted from `INFO stats` (`total_reads_processed`) and `INFO commandstats` before and
  after N calls; our own INFO and the engine's 5-second health PING are subtracted.
- On the critical path (the round trips a caller waits for before the session ends and the
  dialplan goes on to Queue()), measured, not counted: a second hotline server reaches Redis
  through a proxy that holds each request for DELAY seconds. The median call takes
  DELAY x (round trips on the critical path) longer than through the same proxy at no delay.
  A round trip the call does not wait for (the call record, written after the session ends)
  adds nothing.

    .venv/bin/python bench/redis_calls.py [--calls 200]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ServerProcess, pin, pin_pid  # noqa: E402
from bench.loadgen import Workload, closed_loop  # noqa: E402

MAX_ROUND_TRIPS = 2
MAX_COMMANDS = 20
DELAY = 0.02          # seconds the proxy holds each request (critical path measurement)
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
    result = asyncio.run(_exact_calls(port, workload, calls)).ok
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


async def _exact_calls(port: int, workload: Workload, calls: int):
    """Exactly `calls` calls, one after the other (a loadgen Result: routed calls, times)."""
    from bench.loadgen import AgiSession, Result, _Calls, _Collector
    loop = asyncio.get_running_loop()
    made = _Calls(workload)
    result = Result("redis", 1)
    collector = _Collector(result, (0, float("inf")))
    for _ in range(calls):
        finished = loop.create_future()
        session = AgiSession(made.env(), made.digit_reply, time.perf_counter(),
                             workload.timeout, collector, finished, False)
        await loop.create_connection(lambda: session, "127.0.0.1", port)
        await finished
    return result.finish()


class DelayProxy:
    """A TCP proxy to Redis, in its own thread and event loop, that holds every request (engine
    to Redis) for `delay` seconds; replies pass at once. Bytes keep their order."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.delay = 0.0
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _client(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pump(src, dst, held: bool) -> None:
            try:
                while data := await src.read(65536):
                    if held and self.delay:
                        self.loop.call_later(self.delay, dst.write, data)
                    else:
                        dst.write(data)
            finally:
                if not self.loop.is_closed():
                    self.loop.call_later(self.delay if held else 0, dst.close)
        try:
            await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False),
                                 return_exceptions=True)
        except asyncio.CancelledError:     # stop(): ends as a normal return (no log line)
            pass

    def stop(self) -> None:
        async def shut() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def critical_path(host: str, port: int, workload: Workload, state_dir: str,
                  calls: int = 60) -> float:
    """Redis round trips a routed call waits for (see the module's docstring)."""
    proxy = DelayProxy(host, port)
    server = None
    try:
        server = ServerProcess("hotline", 0, "--redis-url", proxy.url, "--state-dir", state_dir)
        asyncio.run(closed_loop("127.0.0.1", server.port, 1, 0.2, workload, warmup=0))
        medians = {}
        for delay in (0.0, DELAY, 0.0, DELAY):
            proxy.delay = delay
            result = asyncio.run(_exact_calls(server.port, workload, calls // 2))
            medians.setdefault(delay, []).append(statistics.median(result.call_latency))
        extra = statistics.mean(medians[DELAY]) - statistics.mean(medians[0.0])
        return extra / DELAY
    finally:
        if server is not None:
            server.stop()
        proxy.stop()


def report(found: dict, critical: float) -> list[str]:
    rt, cmds = found["round_trips"], found["commands"]
    return [
        f"redis per routed call ({found['calls']} sequential calls): {rt:.2f} round trips in "
        f"total, {cmds:.1f} commands {found['by_command']}; {critical:.2f} round trips on the "
        f"critical path (each request held {DELAY * 1000:.0f} ms: the call took "
        f"{critical * DELAY * 1000:.1f} ms longer)",
        f"{'PASS' if critical <= MAX_ROUND_TRIPS + 0.2 else 'FAIL'} redis round trips on the "
        f"critical path {critical:.2f} <= {MAX_ROUND_TRIPS}",
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
            workload = Workload(callers=callers)
            found = measure(redis_server.url, server.port, workload,
                            20 if args.smoke else args.calls)
            server.stop()
            server = None
            critical = critical_path(redis_server.host, redis_server.port, workload,
                                     str(Path(tmp) / "engine-proxied"), 20 if args.smoke else 60)
            for line in report(found, critical):
                print(line)
        finally:
            if server is not None:
                server.stop()
            redis_server.stop()


if __name__ == "__main__":
    main()
