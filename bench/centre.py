"""A whole centre's load on ONE engine process (issue 20, item 3): is the reactor still on time?

    .venv/bin/python bench/centre.py [--seconds 60]        # 2,000 agents, 300 waiting, 100 calls/s
    .venv/bin/python bench/centre.py --agents 200 --waiting 30 --login-rate 0   # a smaller centre
    .venv/bin/python bench/centre.py --smoke               # a few seconds, no verdicts

One process tree on loopback: redis-server, the engine (`servers.py hotline`: app.build_service
with every feature, the sweepers and the dialler included, AMI on) pinned to core 0; this
process (the load generator) and the AMI stand-in (`ami_standin.py`) on core 1 with Redis.

The load, all at once for `--seconds`:
- hotline calls, open loop at `--rate` (100/s): the FastAGI side of Asterisk (loadgen.py),
  the caller listens to the greeting and presses 1 at the menu (`200 result=49 endpos=8000`);
- hold announcements: the `queue-announce` AGI the dialplan runs after every CC_ANNOUNCE_EVERY
  seconds in Queue() ([ccengine-wait], waiting/announce.py), for `--waiting` (300) callers
  each announced every `--announce-every` (30) s: 10 sessions/s, each the dialplan's four
  arguments (queue, `periodic`, QUEUE_PRIO, first-entry epoch); the caller presses 1 (keep
  waiting). The same 300 uniqueids all along, so the engine's line holds 300 callers;
- agent logins at `--login-rate` (5/s): `agent-login` ([ccengine-agent-feature], agents/login.py)
  from the agent's phone, number and PIN typed (PBKDF2 check in the reactor's thread pool,
  QueueAdd to the stand-in); each agent logs in once;
- AMI: the stand-in streams the events of `--agents` (2,000) members and `--waiting` callers
  at `--rate` calls/s (its docstring has the model: 46 events per call, six of them member
  events for the agents' state tracker, two caller events for the queue picture: 600 member
  events/s at 100 calls/s), answers QueueStatus with every member and waiting caller, and
  drops the connection every `--resync-every` (60) s: the engine reconnects, sends QueueStatus
  and resyncs the agents, as after any reconnect.

Is the mix realistic? By Little's law 300 callers waiting at 100 calls/s wait 3 s each; a
caller who waits 3 s is never announced, so 300 callers each announced every 30 s (10/s) is
the announcement load of a centre whose callers wait minutes (at 100 calls/s that would be
thousands waiting): an upper bound for 300, kept because it is the load asked for. 2,000 agents
taking 100 calls/s talk 15 s per call: real centres of that size take ~10 calls/s; the bench
is ten times the event rate of such a centre, which is what it is meant to show.

Agents are seeded through the engine's own stores (AgentDirectory.put/claim, AgentStateStore):
`--agents` logged in (their phones are the stand-in's members), one more agent per expected
login, not logged in. Every agent gets the same PIN hash (one `hash_pin` with
`--pin-iterations`, default the engine's PIN_ITERATIONS: hashing 2,300 PINs one by one would
take two minutes; each check still does the full PBKDF2 work).

Measured: the reactor's lag from a 10 ms timer inside the engine (common.LagSampler, the
samples of the measured window only), AGI command latency (the server's turn) and whole-call
latency per kind, the engine's CPU share of one core (/proc, over the window), its RSS at
the start and the end of the window, sessions ok/failed per kind, and from the engine's log
the resyncs and the agent-event backlog warnings. Targets (printed, never asserted in a test):
lag p99.9 <= 5 ms and max <= 20 ms; AGI command p99 <= 5 ms; engine CPU <= 30 % of one core.
Two cores shared with other jobs: figures are noisy.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (BENCH, PYTHON, ChildProcess, ServerProcess,  # noqa: E402
                          environment_block, machine, percentile, pin, pin_pid, process_cpu,
                          rss_kib)
from bench.loadgen import Result, Workload, open_loop  # noqa: E402
from bench.redis_calls import seed_callers  # noqa: E402

LOGGED_IN_BASE = 10000    # agent numbers (and phones) of the stand-in's members
LOGIN_BASE = 50000        # agents who log in during the run
PIN = "1234"
LAG_P999_MS, LAG_MAX_MS, CMD_P99_MS, CPU_SHARE = 5.0, 20.0, 5.0, 0.30
TIMEOUT = 10.0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def queue_of_agent(agent: int) -> str:
    """As the stand-in places its members (ami_standin.Centre.queue_of_agent)."""
    return "complaint" if agent % 5 == 0 else "inbound"


async def _seed_agents(redis_url: str, logged_in: int, logins: int, iterations: int) -> None:
    from ccengine.agents.directory import AgentDirectory, AgentRecord, AgentSession, hash_pin
    from ccengine.agents.state import AgentStateStore, MemberState
    from ccengine.cli.support import wait
    from ccengine.store.base import RedisConnection

    conn = RedisConnection(redis_url, 10.0)
    directory, states = AgentDirectory(conn), AgentStateStore(conn)
    pin_hash = hash_pin(PIN, iterations=iterations)
    now = time.time()

    async def one(agent: int, base: int, log_in: bool) -> None:
        number = str(base + agent)
        queue = queue_of_agent(agent)
        await wait(directory.put(AgentRecord(number, {queue: 0}, ("en",), pin_hash=pin_hash)))
        if log_in:
            session = AgentSession(number, number, f"PJSIP/{number}", now, {queue: 0})
            if await wait(directory.claim(session)) != "ok":
                raise RuntimeError(f"seeding: agent {number} could not be logged in")
            await wait(states.put(number, queue, MemberState("idle", "", now)))
    try:
        jobs = [(a, LOGGED_IN_BASE, True) for a in range(logged_in)]
        jobs += [(a, LOGIN_BASE, False) for a in range(logins)]
        for start in range(0, len(jobs), 200):
            await asyncio.gather(*(one(*job) for job in jobs[start:start + 200]))
    finally:
        await conn.aclose()


def seed_agents(redis_url: str, logged_in: int, logins: int, iterations: int) -> None:
    asyncio.run(_seed_agents(redis_url, logged_in, logins, iterations))


def workloads(args, callers: list[tuple[str, str]]) -> dict[str, tuple[Workload, float]]:
    """Each kind of session with its rate (sessions/s)."""
    epoch = int(time.time())
    out = {"hotline": (Workload(callers=callers, timeout=TIMEOUT), args.rate)}
    if args.waiting and args.announce_every > 0:
        def announce(n: int) -> tuple[bytes, list[str]]:
            caller = n % args.waiting
            queue = queue_of_agent(caller)
            number, name = callers[caller % len(callers)]
            # QUEUE_PRIO of a normal caller (base 0) is its CCENGINE_PLACE: larger = earlier.
            env = environment_block("queue-announce", f"centre-wait.{caller}", number, name,
                                    channel_no=0x800000 + caller,
                                    args=(queue, "periodic", str(8_639_999 - caller),
                                          str(epoch - 60)))
            return env, ["1"]
        out["announce"] = (Workload(script="queue-announce", call=announce, timeout=TIMEOUT),
                           args.waiting / args.announce_every)
    if args.login_rate > 0:
        def login(n: int) -> tuple[bytes, list[str]]:
            number = str(LOGIN_BASE + n)
            env = environment_block("agent-login", f"centre-login.{n}", number, "Agent",
                                    channel=f"PJSIP/{number}-{n:08x}", args=(number, ""))
            return env, [number, PIN]
        out["login"] = (Workload(script="agent-login", call=login, timeout=TIMEOUT,
                                 expect=b"agent_login_ok"), args.login_rate)
    return out


async def run_load(kinds: dict[str, tuple[Workload, float]], port: int,
                   seconds: float) -> dict[str, Result]:
    runs = [open_loop("127.0.0.1", port, rate, seconds, workload, warmup=0, label=kind)
            for kind, (workload, rate) in kinds.items()]
    return dict(zip(kinds, await asyncio.gather(*runs)))


class StandIn(ChildProcess):
    """bench/ami_standin.py as a child process; `stats()` its counts."""

    def __init__(self, args, cpu: int) -> None:
        super().__init__([PYTHON, str(BENCH / "ami_standin.py"), "--agents", str(args.agents),
                          "--waiting", str(args.waiting), "--rate", str(args.rate),
                          "--resync-every", str(args.resync_every), "--cpu", str(cpu)],
                         "AMI stand-in")

    def stats(self) -> dict:
        return self.ask("stats")


def wait_for_sync(standin: StandIn, engine_log: Path, timeout: float) -> None:
    """Until the engine logged in, got its QueueStatus and finished the first agent resync."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine_log.exists() and "agent resync (" in engine_log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the engine did not resync within {timeout:g} s "
                       f"(stand-in: {standin.stats()})")


def lag_in_window(path: Path, window: tuple[float, float]) -> list[float]:
    data = json.loads(path.read_text())
    start, end = window
    return sorted(lag for t, lag in zip(data["t"], data["lag_ms"]) if start <= t <= end)


def log_counts(engine_log: Path, since: int) -> dict[str, int]:
    """What the engine logged in the measured window (the log's bytes from `since`)."""
    with engine_log.open("rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    return {"resyncs": text.count("agent resync ("),
            "backlog_resyncs_asked": text.count("agent events: a resync from QueueStatus"),
            "queuestatus_failed": text.count("QueueStatus after the AMI login"),
            "tracebacks": text.count("Traceback (most recent call last)")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds of a small centre, no verdicts")
    parser.add_argument("--rate", type=float, default=100.0, help="hotline calls per second")
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--waiting", type=int, default=300)
    parser.add_argument("--announce-every", type=float, default=30.0)
    parser.add_argument("--login-rate", type=float, default=5.0)
    parser.add_argument("--resync-every", type=float, default=60.0)
    parser.add_argument("--pin-iterations", type=int, help="PBKDF2 iterations of the seeded PINs "
                        "(default: the engine's PIN_ITERATIONS)")
    parser.add_argument("--cprofile", help="run the engine under cProfile, write it here")
    parser.add_argument("--keep", help="copy the engine's log and the lag samples to this folder")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rate, args.agents, args.waiting = 4.0, 20.0, 200, 30
        args.announce_every, args.login_rate, args.resync_every = 10.0, 2.0, 2.0
    from ccengine.agents.directory import PIN_ITERATIONS
    iterations = args.pin_iterations or PIN_ITERATIONS
    logins = math.ceil(args.login_rate * args.seconds * 1.1) + 5 if args.login_rate > 0 else 0
    pin(1)
    print(f"# ccengine centre bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{machine()}; engine on core 0, load generator + AMI stand-in + redis-server on "
          f"core 1; {args.seconds:g} s: hotline {args.rate:g}/s, {args.agents} agents, "
          f"{args.waiting} waiting (announced every {args.announce_every:g} s), logins "
          f"{args.login_rate:g}/s (PBKDF2 {iterations}), AMI dropped every "
          f"{args.resync_every:g} s", flush=True)
    from ccengine.store.embedded import EmbeddedRedis
    with tempfile.TemporaryDirectory(prefix="cccentre-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis").start()
        standin = engine = None
        try:
            pin_pid(redis_server.process.pid, 1)
            callers = seed_callers(redis_server.url)
            started = time.perf_counter()
            seed_agents(redis_server.url, args.agents, logins, iterations)
            print(f"# seeded {args.agents} logged-in agents and {logins} to log in "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
            standin = StandIn(args, 1)
            state = Path(tmp) / "engine"
            lag_file = Path(tmp) / "lag.json"
            extra = ("--cprofile", args.cprofile) if args.cprofile else ()
            engine = ServerProcess("hotline", 0, "--redis-url", redis_server.url,
                                   "--state-dir", str(state), "--ami-port", str(standin.port),
                                   "--lag", str(lag_file), *extra)
            engine_log = state / "engine.log"
            wait_for_sync(standin, engine_log, 60)
            time.sleep(1.0)
            log_from = engine_log.stat().st_size
            rss0, cpu0, wall0 = rss_kib(engine.pid), process_cpu(engine.pid), time.time()
            results = asyncio.run(run_load(workloads(args, callers), engine.port, args.seconds))
            wall1, cpu1, rss1 = time.time(), process_cpu(engine.pid), rss_kib(engine.pid)
            ami = standin.stats()
            counts = log_counts(engine_log, log_from)
            engine.stop()
            lag = lag_in_window(lag_file, (wall0, wall1))
            if args.keep:
                keep = Path(args.keep)
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(engine_log, keep / "engine.log")
                shutil.copy(lag_file, keep / "lag.json")
        finally:
            if engine is not None:
                engine.stop()
            if standin is not None:
                standin.stop()
            redis_server.stop()
    cpu_share = (cpu1 - cpu0) / (wall1 - wall0)
    print(report(results, lag, cpu_share, rss0, rss1, ami, counts, wall1 - wall0, args.smoke))
    return 0


def report(results: dict[str, Result], lag: list[float], cpu_share: float, rss0: int,
           rss1: int, ami: dict, counts: dict, seconds: float, smoke: bool) -> str:
    lines = ["", "| sessions | rate/s | ok | failed | cmd p50/p99 ms | call p50/p99 ms | failures |",
             "|---|---|---|---|---|---|---|"]
    commands: list[float] = []
    for kind, r in results.items():
        commands += r.command_latency
        lines.append(f"| {kind} | {r.ok / seconds:.1f} | {r.ok} | {r.failed} "
                     f"| {r.ms('command', .5):.2f} / {r.ms('command', .99):.2f} "
                     f"| {r.ms('call', .5):.2f} / {r.ms('call', .99):.2f} "
                     f"| {r.failures or ''} |")
    commands.sort()
    cmd_p99 = percentile(commands, .99) * 1000
    lag_p = {q: percentile(lag, q) for q in (.5, .99, .999)}
    lag_max = lag[-1] if lag else float("nan")
    calls = [v for r in results.values() for v in r.call_latency]
    calls.sort()
    lines += [
        "",
        f"reactor lag (10 ms timer, {len(lag)} samples): p50 {lag_p[.5]:.2f} ms, p99 "
        f"{lag_p[.99]:.2f} ms, p99.9 {lag_p[.999]:.2f} ms, max {lag_max:.2f} ms",
        f"AGI command p99 (all kinds) {cmd_p99:.2f} ms; whole-call p99 (all kinds) "
        f"{percentile(calls, .99) * 1000:.2f} ms",
        f"engine CPU {cpu_share:.0%} of one core; RSS {rss0 / 1024:.0f} MB at the start, "
        f"{rss1 / 1024:.0f} MB at the end",
        f"AMI stand-in: {ami['events']} events sent for {ami['calls']} calls (from the first "
        f"connection on, warm-up included), {ami['forced_resyncs']} forced resyncs, "
        f"{ami['connections']} connections, largest write buffer "
        f"{ami['max_write_buffer'] / 1024:.0f} KiB, actions {ami['actions']}",
        f"engine log in the window: {counts}",
    ]
    checks = [
        (lag_p[.999] <= LAG_P999_MS, f"reactor lag p99.9 {lag_p[.999]:.2f} <= {LAG_P999_MS:g} ms"),
        (lag_max <= LAG_MAX_MS, f"reactor lag max {lag_max:.2f} <= {LAG_MAX_MS:g} ms"),
        (cmd_p99 <= CMD_P99_MS, f"AGI command p99 {cmd_p99:.2f} <= {CMD_P99_MS:g} ms"),
        (cpu_share <= CPU_SHARE, f"engine CPU {cpu_share:.0%} <= {CPU_SHARE:.0%} of one core"),
    ]
    for ok, text in checks:
        lines.append(f"{'INFO' if smoke else verdict(ok)} {text}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
