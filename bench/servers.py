"""The FastAGI servers the benchmark compares, each run as its own pinned process.

    python bench/servers.py hotline --cpu 0 --redis-url redis://... --state-dir DIR \
        [--fastagi max_connections=20000 ...]
    python bench/servers.py bare --cpu 0 --sequence commands.json
    python bench/servers.py statemachine --cpu 0 --sequence commands.json
    python bench/servers.py panoramisk --cpu 0 --sequence commands.json
    python bench/servers.py panoramisk-redis --cpu 0 --sequence commands.json --redis-url URL

- hotline: the engine as `ccengine run` wires it (app.build_service: every feature, real Redis,
  real metrics, HTTP on a free port), queues open around the clock; AMI disabled unless
  `--ami-port P` names an AMI server on 127.0.0.1 (bench/ami_standin.py,
  bench/ami_real.py); `--lag FILE` samples
  the reactor's lag every 10 ms (common.LagSampler) and writes it to FILE at shutdown; each
  `--fastagi KEY=VALUE` overrides one `[fastagi]` setting (ccengine/agi/settings.py), e.g. the
  connection limits for bench/memory.py's 10,000 held sessions.
- bare: Twisted (asyncio reactor, like the engine), LineReceiver and an `async def` script that
  sends the recorded command sequence of one hotline call, no logic: the baseline.
- statemachine: the same sequence from a bare Protocol state machine (a lower bound on cost).
- framework: the engine's FastAGIFactory and AgiChannel replaying the sequence, no route.
- framework-redis: framework plus the hotline's two Redis scripts (caller lookup before the
  sequence, call record after it, not awaited), no route logic: the cost of the engine's
  plumbing and Redis alone, a ceiling for any route logic.
- panoramisk: panoramisk's FastAGI Application running the same sequence.
- panoramisk-redis: panoramisk plus the hotline's Redis work as a panoramisk user writes it
  (redis.asyncio, register_script): the caller lookup awaited before the first command, the
  call record after the session, not awaited; the engine's scripts, keys and arguments.

Prints one JSON line `{"port": N}` when listening (the hotline adds `"http_port"`: its
/metrics and /healthz). Control on stdin, one JSON line back per request: `stats` (delayed
calls, asyncio tasks, sessions; the garbage collector's CPU seconds, longest collection and
count so far; then, after a full collection, the objects it tracks). EOF on stdin stops the
server.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import LagSampler, ReplayRoute, pin  # noqa: E402

SCRIPT = "hotline"
BENCH_AMI_SECRET_ENV = "CCENGINE_BENCH_AMI_SECRET"   # the stand-in accepts any secret


def _reply(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


class _GcMeter:
    """The garbage collector's CPU in this process: `gc.callbacks` around every collection,
    timed with the thread's CPU clock."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.longest = 0.0
        self.collections = 0
        self._started: float | None = None
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.thread_time()
        elif self._started is not None:
            spent = time.thread_time() - self._started
            self._started = None
            self.seconds += spent
            self.longest = max(self.longest, spent)
            self.collections += 1

    def stats(self) -> dict:
        return {"gc_seconds": self.seconds, "gc_longest_ms": self.longest * 1000,
                "gc_collections": self.collections}


def _control(loop: asyncio.AbstractEventLoop, stats, stop) -> None:
    """Serve `stats` requests from stdin (the server's own figures and the collector's CPU,
    read before the full collection that makes leftovers visible); stop on EOF."""
    meter = _GcMeter()
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)
    pending = b""

    def readable() -> None:
        nonlocal pending
        data = os.read(fd, 4096)
        if not data:
            loop.remove_reader(fd)
            stop()
            return
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip() == b"stats":
                collector = meter.stats()
                gc.collect()
                _reply({**stats(), **collector, "gc_objects": len(gc.get_objects())})
            elif line.strip():
                _reply({"error": f"unknown request {line[:40]!r}"})

    loop.add_reader(fd, readable)


def _sequence(path: str) -> list[bytes]:
    return [line.encode() + b"\n" for line in json.loads(Path(path).read_text())]


# --- hotline: the engine ---------------------------------------------------------------------

def run_hotline(args) -> None:
    from twisted.internet import asyncioreactor
    asyncioreactor.install()
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from ccengine.app import build_service, fastagi_factory, tune_garbage_collector
    from ccengine.config import parse_config
    from ccengine.store.embedded import free_port

    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    log_file = open(state / "engine.log", "a", encoding="utf-8")
    globalLogBeginner.beginLoggingTo([textFileLogObserver(log_file)],
                                     redirectStandardIO=False)
    port, http_port = free_port(), free_port()
    all_day = {"open": "00:00", "close": "23:59:59.999999"}
    ami: dict = {"enabled": False}
    if args.ami_port:
        os.environ.setdefault(BENCH_AMI_SECRET_ENV, "bench")
        ami = {"enabled": True, "host": "127.0.0.1", "port": args.ami_port,
               "secret_env": BENCH_AMI_SECRET_ENV}
    config = parse_config({
        "engine": {"state_dir": str(state)},
        "fastagi": {**dict(args.fastagi), "port": port},
        "http": {"port": http_port},
        "ami": ami,
        "redis": {"url": args.redis_url},
        "queues": {name: dict(all_day) for name in ("inbound", "complaint", "outbound",
                                                    "supervisor")},
    }, "<bench>")
    top, ctx = build_service(config, reactor, args.redis_url)
    factory = fastagi_factory(top)

    def stats() -> dict:
        return {"delayed_calls": len(reactor.getDelayedCalls()),
                "tasks": len(asyncio.all_tasks(loop)),
                "sessions": factory.active_sessions,
                # Every AMI event received, parsed or not (AmiClient.dispatch/count_unparsed).
                "ami_events": ctx.registry.get_sample_value(
                    "ccengine_ami_events_total", {"server": "asterisk"}) or 0}

    loop = asyncio.get_event_loop()
    top.startService()
    _control(loop, stats, reactor.stop)
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    if args.lag:
        sampler = LagSampler(reactor)
        reactor.callWhenRunning(sampler.start)

        def dump() -> None:
            sampler.stop()
            sampler.dump(args.lag)
        reactor.addSystemEventTrigger("before", "shutdown", dump)
    tune_garbage_collector()   # as `ccengine run` does
    reactor.callWhenRunning(_reply, {"port": port, "http_port": http_port})
    reactor.run()


def _setting(text: str) -> tuple[str, object]:
    """`KEY=VALUE` of a --fastagi option: VALUE as a TOML file would give it (int, float,
    else text), so parse_config checks it as it checks the file."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    for kind in (int, float):
        try:
            return key.strip(), kind(value)
        except ValueError:
            pass
    return key.strip(), value


# --- the engine's FastAGI framework alone -----------------------------------------------------

def run_framework(args, with_redis: bool) -> None:
    """FastAGIFactory + AgiChannel replaying the sequence: the engine's plumbing, no route;
    `with_redis`: also the hotline's two Redis scripts (framework-redis)."""
    from twisted.internet import asyncioreactor
    asyncioreactor.install()
    from prometheus_client import CollectorRegistry
    from twisted.internet import reactor

    from ccengine.agi.metrics import AgiMetrics
    from ccengine.agi.server import FastAGIFactory
    from ccengine.agi.settings import AgiSettings
    from ccengine.app import tune_garbage_collector

    route = ReplayRoute(_sequence(args.sequence))
    if with_redis:
        if not args.redis_url:
            raise SystemExit("framework-redis needs --redis-url")
        route = _redis_replay(route, args.redis_url, reactor)
    factory = FastAGIFactory({SCRIPT: route}, reactor, AgiSettings(),
                             AgiMetrics(CollectorRegistry()))
    tune_garbage_collector()   # the engine's collector settings, as the hotline has them
    listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
    loop = asyncio.get_event_loop()
    _control(loop, lambda: {"delayed_calls": len(reactor.getDelayedCalls()),
                            "tasks": len(asyncio.all_tasks(loop)),
                            "sessions": factory.active_sessions}, reactor.stop)
    reactor.callWhenRunning(_reply, {"port": listening.getHost().port})
    reactor.run()


def _record_store(conn):
    """The hotline's CallRecordStore, bounded as the default configuration bounds it."""
    from ccengine.calls.records import CallRecordStore
    from ccengine.config import load_config

    config = load_config(None)
    return CallRecordStore(conn, config.records.max_calls, config.records.ttl_days)


def _record_fields(started: float, number: str, profile, channel_name: str) -> dict:
    """The fields the hotline records for a caller queued from the menu (calls/hotline.py)."""
    return {"started": f"{started:.3f}", "caller": number, "tier": profile.tier,
            "customer": profile.name, "language": "en", "channel": channel_name,
            "queue": "inbound", "category": "inquiry", "priority": 0, "outcome": "queued"}


def _redis_replay(replay: ReplayRoute, redis_url: str, reactor):
    """The replay with the hotline's Redis work around it: the same lookup script (with the
    complaint index), the same record script with the same fields, through the engine's lane
    with its store metrics."""
    from prometheus_client import CollectorRegistry

    from ccengine.config import load_config
    from ccengine.store import keys
    from ccengine.store.base import RedisConnection, StoreMetrics
    from ccengine.calls.customers import CustomerStore

    conn = RedisConnection(redis_url, load_config(None).redis.timeout,
                           StoreMetrics(CollectorRegistry()), reactor)
    customers = CustomerStore(conn)
    records = _record_store(conn)

    class RedisReplay:
        async def handle(self, channel) -> None:
            number = channel.env.caller_number
            started = reactor.seconds()
            profile = await customers.lookup(number, (keys.complaints_by_number(number),))
            await replay.handle(channel)
            records.create(channel.env.uniqueid, started, _record_fields(
                started, number, profile, channel.env.channel)).addErrback(lambda failure: None)

        async def on_watchdog(self, channel) -> None:
            pass
    return RedisReplay()


# --- bare Twisted baselines -------------------------------------------------------------------

def run_twisted_baseline(args, state_machine: bool) -> None:
    from twisted.internet import asyncioreactor
    asyncioreactor.install()
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.protocol import Factory, Protocol
    from twisted.protocols.basic import LineReceiver

    commands = _sequence(args.sequence)
    sessions = {"active": 0}

    class ScriptedAgi(LineReceiver):
        """LineReceiver + an async def script awaiting one Deferred per command."""
        delimiter = b"\n"

        def connectionMade(self) -> None:
            self.env = []
            self.waiting: Deferred | None = None

        def lineReceived(self, line: bytes) -> None:
            if self.env is not None:
                if line:
                    self.env.append(line)
                    return
                self.env = None
                sessions["active"] += 1
                Deferred.fromCoroutine(self.script()).addBoth(self.done)
                return
            waiting, self.waiting = self.waiting, None
            if waiting is not None:
                waiting.callback(line)

        def send(self, command: bytes) -> Deferred:
            self.waiting = Deferred()
            self.transport.write(command)
            return self.waiting

        async def script(self) -> None:
            for command in commands:
                reply = await self.send(command)
                if not reply.startswith(b"200"):
                    raise RuntimeError(reply)

        def done(self, result) -> None:
            sessions["active"] -= 1
            self.transport.loseConnection()

        def connectionLost(self, reason) -> None:
            waiting, self.waiting = self.waiting, None
            if waiting is not None:
                waiting.errback(reason)

    class StateMachineAgi(Protocol):
        """Environment, then the next command on each reply line; no coroutine, no Deferred."""

        def connectionMade(self) -> None:
            self.buffer = b""
            self.step = -1

        def dataReceived(self, data: bytes) -> None:
            self.buffer += data
            if self.step < 0:
                end = self.buffer.find(b"\n\n")
                if end < 0:
                    return
                self.buffer = self.buffer[end + 2:]
                self.step = 0
                self.transport.write(commands[0])
                return
            *lines, self.buffer = self.buffer.split(b"\n")
            for _ in lines:
                self.step += 1
                if self.step == len(commands):
                    self.transport.loseConnection()
                    return
                self.transport.write(commands[self.step])

    factory = Factory.forProtocol(StateMachineAgi if state_machine else ScriptedAgi)
    factory.noisy = False
    # Twisted's default backlog (50), as the engine's internet.TCPServer uses.
    listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
    loop = asyncio.get_event_loop()
    _control(loop, lambda: {"delayed_calls": len(reactor.getDelayedCalls()),
                            "tasks": len(asyncio.all_tasks(loop)),
                            "sessions": sessions["active"]}, reactor.stop)
    reactor.callWhenRunning(_reply, {"port": listening.getHost().port})
    reactor.run()


# --- panoramisk -------------------------------------------------------------------------------

def run_panoramisk(args, with_redis: bool) -> None:
    """panoramisk's Application replaying the sequence; `with_redis`: around it the hotline's
    Redis work as a panoramisk user writes it (panoramisk-redis)."""
    from panoramisk.fast_agi import Application

    commands = [c[:-1].decode() for c in _sequence(args.sequence)]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = Application(loop=loop)

    async def script(request) -> None:
        for command in commands:
            reply = await request.send_command(command)
            if "error" in reply:
                raise RuntimeError(reply)

    writes: set[asyncio.Task] = set()   # call records still being written (panoramisk-redis)
    if with_redis:
        if not args.redis_url:
            raise SystemExit("panoramisk-redis needs --redis-url")
        script = _panoramisk_redis(script, args.redis_url, writes)
    app.add_route(SCRIPT, script)
    server = loop.run_until_complete(
        asyncio.start_server(app.handler, "127.0.0.1", 0))

    async def drain_and_stop() -> None:
        if writes:
            await asyncio.wait(set(writes))
        loop.stop()

    stopping: list[asyncio.Task] = []   # holds the stopping task (the loop keeps weak refs)
    _control(loop, lambda: {"delayed_calls": len(loop._scheduled),
                            "tasks": len(asyncio.all_tasks(loop)), "sessions": None},
             lambda: stopping.append(loop.create_task(drain_and_stop())))
    _reply({"port": server.sockets[0].getsockname()[1]})
    loop.run_forever()


def _panoramisk_redis(replay, redis_url: str, writes: set):
    """`replay` with the hotline's two scripts around it, through redis-py's asyncio client:
    the lookup (with the complaint index) awaited before the first command, the record (the
    hotline's "create", same fields) sent as the session ends; its task is kept in `writes`
    until it is done."""
    import redis.asyncio

    from ccengine.calls import customers, records as call_records
    from ccengine.store import keys

    # The default pool raises MaxConnectionsError once more than max_connections calls wait on
    # Redis at the same time (closed 500 does); a user who meets that error switches to the
    # blocking pool, which makes the extra calls wait for a free connection.
    pool = redis.asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=100,
                                                         decode_responses=True)
    client = redis.asyncio.Redis(connection_pool=pool)
    records = _record_store(None)   # builds the record script's arguments only
    # The engine's own scripts (bench/inproc_hotline.py, too, knows them by these names).
    lookup = client.register_script(customers._LOOKUP.source)
    save = client.register_script(call_records._SAVE.source)

    def written(task: asyncio.Task) -> None:
        writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"panoramisk-redis: call record not written: {task.exception()!r}",
                  file=sys.stderr)

    async def script(request) -> None:
        number = request.headers["agi_callerid"]
        started = time.time()
        keys_, argv = customers.lookup_arguments(number, (keys.complaints_by_number(number),))
        profile = customers.profile_from_reply(await lookup(keys_, argv), number)
        await replay(request)
        # As the hotline does, the record does not hold the call: panoramisk closes the
        # connection when this returns, while the write goes on.
        keys_, argv = records.write_arguments("create", request.headers["agi_uniqueid"],
                                              started, _record_fields(
                                                  started, number, profile,
                                                  request.headers["agi_channel"]))
        task = asyncio.ensure_future(save(keys_, argv))
        writes.add(task)
        task.add_done_callback(written)
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("hotline", "bare", "statemachine", "panoramisk",
                                         "panoramisk-redis", "framework", "framework-redis"))
    parser.add_argument("--cpu", type=int, default=-1, help="core to pin to (-1: none)")
    parser.add_argument("--sequence", help="JSON list of command lines (baselines)")
    parser.add_argument("--redis-url",
                        help="hotline, framework-redis, panoramisk-redis: Redis to use")
    parser.add_argument("--state-dir", help="hotline: state directory (engine.log)")
    parser.add_argument("--fastagi", type=_setting, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="hotline: override one [fastagi] setting (repeatable)")
    parser.add_argument("--ami-port", type=int,
                        help="hotline: AMI on 127.0.0.1:PORT (ami_standin.py, ami_real.py)")
    parser.add_argument("--lag", help="hotline: write the reactor lag samples (ms, JSON) here")
    parser.add_argument("--cprofile", help="write a cProfile of the run to this file at exit")
    args = parser.parse_args()
    pin(args.cpu if args.cpu >= 0 else None)
    if args.cprofile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            run(args)
        finally:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
    else:
        run(args)


def run(args) -> None:
    if args.kind == "hotline":
        run_hotline(args)
    elif args.kind in ("panoramisk", "panoramisk-redis"):
        run_panoramisk(args, with_redis=args.kind == "panoramisk-redis")
    elif args.kind in ("framework", "framework-redis"):
        run_framework(args, with_redis=args.kind == "framework-redis")
    else:
        run_twisted_baseline(args, state_machine=args.kind == "statemachine")


if __name__ == "__main__":
    main()
