"""The engine's own Python cost of one hotline call, in process: no sockets, no Redis I/O.

The closed-loop figures of bench/agi.py move by 10-25 % between runs on a shared machine, more
than most single optimisations are worth. This measures only what the engine's code costs, in
one process, best of several repetitions:

- hotline: the engine wired as `ccengine run` wires it (app.build_service, every feature, real
  prompts and metrics), its Redis scripts answered from memory at once (a known caller: the
  same 12 commands as the closed-loop bench);
- replay: the same FastAGI plumbing (FastAGIFactory, AgiChannel) replaying the command lines
  the hotline sent, with no route logic: what the route itself adds is the difference.

The "Asterisk" side is a list: each command line the engine writes is answered as
bench/loadgen.py answers it (menu key 1 on the first prompt that takes escape digits).

    .venv/bin/python bench/inproc_hotline.py [--calls 2000] [--repeat 5] [--profile] [--smoke]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ReplayRoute, environment_block, pin  # noqa: E402
from bench.loadgen import digit_reply, reply_to, takes_digits  # noqa: E402

# Any moment will do: the bench opens every queue around the clock.
START = 1767578400.0   # 2026-01-05 02:00 UTC


class _Transport:
    """What FastAGIProtocol writes to and closes (not a tcp.Server: no direct socket sends)."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def loseConnection(self) -> None:
        self.closed = True


MENU_KEY = digit_reply("1")


def call(factory, env: bytes, record: list[bytes] | None = None) -> int:
    """One session through `factory`; returns the number of commands the engine sent."""
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure
    protocol = factory.buildProtocol(None)
    transport = _Transport()
    protocol.makeConnection(transport)
    protocol.dataReceived(env)
    pressed = False
    commands = 0
    while transport.out:
        data = b"".join(transport.out)
        transport.out.clear()
        for line in data.split(b"\n")[:-1]:
            if record is not None:
                record.append(line + b"\n")
            commands += 1
            if not pressed and takes_digits(line):
                pressed = True
                protocol.dataReceived(MENU_KEY)
            else:
                protocol.dataReceived(reply_to(line))
    if not transport.closed:
        raise RuntimeError("the engine did not close the session")
    protocol.connectionLost(Failure(ConnectionDone()))
    return commands


def _memory_redis(conn) -> None:
    """Answer the hotline's two scripts at once, as Redis would for a known caller."""
    from twisted.internet.defer import succeed

    from ccengine.calls import customers, records as calls

    def script(lua, keys, args):
        if lua is customers._LOOKUP:
            counts = [0] * (len(keys) - 3)
            return succeed([["name", "Bench Caller", "tier", "known"], 0, 0, *counts])
        if lua is calls._SAVE:
            return succeed(0)
        raise AssertionError(f"unexpected script on the hotline path: {lua.source[:60]!r}")
    conn.script = script


def build(state_dir: Path):
    """(hotline factory, replay factory, clock)."""
    from prometheus_client import CollectorRegistry
    from twisted.internet.task import Clock

    from ccengine.agi.metrics import AgiMetrics
    from ccengine.agi.server import FastAGIFactory
    from ccengine.app import build_service, fastagi_factory
    from ccengine.config import parse_config

    clock = Clock()
    clock.advance(START)
    all_day = {"open": "00:00", "close": "23:59:59.999999"}
    config = parse_config({
        "engine": {"state_dir": str(state_dir)},
        "ami": {"enabled": False},
        "queues": {name: dict(all_day) for name in ("inbound", "complaint", "outbound",
                                                    "supervisor")},
    }, "<bench>")
    # Nothing is started: no port is opened and no Redis connection is made.
    top, ctx = build_service(config, clock, "redis://127.0.0.1:1/0")
    _memory_redis(ctx.redis)
    hotline = fastagi_factory(top)
    sequence: list[bytes] = []
    call(hotline, environment_block("hotline", "1767578400.1", "+4930555000"), sequence)
    replay = FastAGIFactory({"hotline": ReplayRoute(sequence)}, clock, hotline.settings,
                            AgiMetrics(CollectorRegistry()))
    return hotline, replay, clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile the hotline calls")
    parser.add_argument("--smoke", action="store_true", help="a few calls (the test suite)")
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.repeat = 20, 1
    pin(0)
    from ccengine.app import tune_garbage_collector
    with tempfile.TemporaryDirectory(prefix="ccbench-inproc-") as tmp:
        hotline, replay, clock = build(Path(tmp))
        factories = {"hotline": hotline, "replay": replay}
        envs = [environment_block("hotline", f"1767578400.{i}", f"+49305550{i % 1000:03d}",
                                  channel_no=i) for i in range(1000)]
        counts = {name: call(f, envs[0]) for name, f in factories.items()}
        tune_garbage_collector()   # as `ccengine run` does after start-up
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, factory in factories.items():
                started = time.perf_counter()
                for i in range(args.calls):
                    call(factory, envs[i % 1000])
                per_call = (time.perf_counter() - started) / args.calls * 1e6
                best[name] = min(best.get(name, per_call), per_call)
        print(f"commands per call: hotline {counts['hotline']}, replay {counts['replay']}")
        print(f"per call (best of {args.repeat} x {args.calls}): hotline {best['hotline']:.1f} us, "
              f"replay {best['replay']:.1f} us; the route's own logic "
              f"{best['hotline'] - best['replay']:.1f} us")
        print(f"timers left on the clock: {len(clock.getDelayedCalls())}")
        if args.profile:
            import cProfile
            import pstats
            profiler = cProfile.Profile()
            profiler.enable()
            for i in range(args.calls):
                call(factories["hotline"], envs[i % 1000])
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
