"""AMI ingestion benchmark: the engine's full path against bare parsing of the same bytes.

The stream: every event block Asterisk 22 sent in the raw captures (tests/fixtures/ami/
*.from_asterisk.raw, copies of ../shared/asterisk/transcripts2), capture by capture in
recorded order and repeated until 200k events, each repetition with its own Uniqueid/
Linkedid values (epoch part shifted), after the real banner. So the event kinds and sizes are
those of the captures (VarSet, DeviceStateChange, Newexten, QueueMemberStatus, ...).

A sender on core 1 (this process, os.sendfile) streams it over loopback TCP to a fresh
ingestion process pinned to core 0, which runs either
- full: AmiProtocol (BlockSplitter + Message) -> AmiClient.dispatch (subscribers, metrics) ->
  stats QueueEventConsumer (queue metrics, waiting snapshot), as app.py wires them; or
- bare: BlockSplitter + Message.parse only.
Rounds alternate full/bare; events/s = events / (first byte .. last event), median of rounds.

    .venv/bin/python bench/ami.py [--quick | --smoke]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import PYTHON, ROOT, machine, pin  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "ami"
_IDS = re.compile(rb"((?:Uniqueid|Linkedid): )(\d+)(\.\d+)")
# Queues named in the captures (lab2_queues.conf) besides the engine's defaults.
CAPTURE_QUEUES = ("exitq", "shortq")


def capture_events() -> tuple[bytes, list[list[bytes]]]:
    """(banner line, [event blocks of each raw capture])."""
    from ccengine.ami.wire import BlockSplitter, Message
    banner = b"Asterisk Call Manager/11.0.0\r\n"
    captures = []
    for path in sorted(FIXTURES.glob("*.from_asterisk.raw")):
        splitter = BlockSplitter()
        blocks = [b for b in splitter.feed(path.read_bytes()) if Message.parse(b).event]
        if blocks:
            captures.append(blocks)
    return banner, captures


def build_stream(total: int) -> tuple[bytes, int]:
    """The banner and `total` events (bytes), and the number of events."""
    banner, captures = capture_events()
    out = [banner]
    count = rep = 0
    while count < total:
        rep += 1
        for blocks in captures:
            for block in blocks:
                if count == total:
                    break
                out.append(_IDS.sub(lambda m: m[1] + str(int(m[2]) + rep).encode() + m[3], block))
                out.append(b"\r\n\r\n")
                count += 1
    return b"".join(out), count


# --- ingestion process ------------------------------------------------------------------------

def ingest(mode: str, port: int, expect: int) -> None:
    from twisted.internet import asyncioreactor
    asyncioreactor.install()
    from prometheus_client import CollectorRegistry
    from twisted.internet import reactor
    from twisted.internet.protocol import ClientFactory, Protocol

    from ccengine.ami.wire import BlockSplitter, Message

    registry = CollectorRegistry()
    state = {"first": None, "last": None, "events": 0, "cpu": 0.0}

    if mode == "full":
        from ccengine.ami.client import AmiClient, AmiSettings
        from ccengine.ami.metrics import AmiMetrics
        from ccengine.ami.protocol import AmiProtocol
        from ccengine.config import parse_config
        from ccengine.queues.feed import QueueFeed
        from ccengine.queues.picture import QueuePicture
        from ccengine.stats import QueueStats

        config = parse_config({"queues": {name: {} for name in CAPTURE_QUEUES}}, "<bench>")
        metrics = AmiMetrics(registry)
        client = AmiClient(AmiSettings(), "unused", clock=reactor, endpoint=None,
                           metrics=metrics)
        stats = QueueStats.build(registry, dict(config.queues), reactor)
        # The engine's wiring: the queue feed keeps the picture and hands the statistics
        # their events (ccengine/queues/).
        feed = QueueFeed(client, QueuePicture(reactor))
        feed.on(stats.consumer.EVENTS, stats.consumer.handle)

        class Ingest(AmiProtocol):
            def dataReceived(self, data: bytes) -> None:
                if state["first"] is None:
                    state["first"], state["cpu"] = time.perf_counter(), time.process_time()
                super().dataReceived(data)

        def build():
            # The wiring of AmiClient._build_protocol: events to dispatch, bad input counted.
            protocol = Ingest(reactor, "bench")
            protocol.on_event = client.dispatch
            protocol.event_wanted = client.wants_event
            protocol.on_unparsed_event = client.count_unparsed
            protocol.on_bad_message = lambda reason, detail: metrics.bad(reason)
            return protocol

        def events() -> int:
            return int(registry.get_sample_value("ccengine_ami_events_total",
                                                {"server": "asterisk"}) or 0)
    else:
        class Bare(Protocol):
            def __init__(self) -> None:
                self.splitter = BlockSplitter()
                self.parsed = 0

            def dataReceived(self, data: bytes) -> None:
                if state["first"] is None:
                    state["first"], state["cpu"] = time.perf_counter(), time.process_time()
                for block in self.splitter.feed(data):
                    Message.parse(block)
                    self.parsed += 1

        build = Bare
        holder = {}

        def events() -> int:
            return holder["protocol"].parsed

    class Factory(ClientFactory):
        def buildProtocol(self, addr):
            protocol = build()
            holder_set(protocol)
            return protocol

        def clientConnectionLost(self, connector, reason):
            state["last"] = time.perf_counter()
            state["cpu"] = time.process_time() - state["cpu"]
            state["events"] = events()
            reactor.stop()

        def clientConnectionFailed(self, connector, reason):
            print(json.dumps({"error": str(reason.value)}), flush=True)
            reactor.stop()

    def holder_set(protocol) -> None:
        if mode != "full":
            holder["protocol"] = protocol

    reactor.connectTCP("127.0.0.1", port, Factory())
    reactor.run()
    if state["first"] is not None:
        seconds = state["last"] - state["first"]
        print(json.dumps({"events": state["events"], "seconds": seconds,
                          "cpu": state["cpu"] / seconds if seconds else 0}), flush=True)


# --- orchestration ----------------------------------------------------------------------------

async def _serve_once(path: Path, mode: str, expect: int) -> dict:
    """Start an ingestion process, send it the stream with sendfile, read its result."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    async def send(reader, writer) -> None:
        with open(path, "rb") as f:
            await loop.sendfile(writer.transport, f)
        writer.close()
        done.set_result(None)

    server = await asyncio.start_server(send, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    child = await asyncio.create_subprocess_exec(
        PYTHON, __file__, "--ingest", mode, "--port", str(port), "--expect", str(expect),
        stdout=subprocess.PIPE, cwd=ROOT)
    out, _ = await child.communicate()
    server.close()
    await server.wait_closed()
    return json.loads(out.decode().strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--smoke", action="store_true")
    parser.add_argument("--ingest", choices=("full", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest:
        pin(0)
        ingest(args.ingest, args.port, args.expect)
        return 0
    pin(1)
    events = 2000 if args.smoke else args.events
    rounds = args.rounds or (1 if args.smoke else 3 if args.quick else 5)
    stream, count = build_stream(events)
    print(f"# ccengine AMI bench, {machine()}; {count} events, {len(stream) / 1e6:.1f} MB "
          f"({len(stream) / count:.0f} B/event), ingestion on core 0, sender on core 1, "
          f"{rounds} rounds")
    results: dict[str, list[dict]] = {"full": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="ccbench-ami-") as tmp:
        path = Path(tmp) / "stream.bin"
        path.write_bytes(stream)
        for n in range(rounds):
            for mode in (("full", "bare") if n % 2 == 0 else ("bare", "full")):
                found = asyncio.run(_serve_once(path, mode, count))
                if "error" in found:
                    raise RuntimeError(found["error"])
                rate = found["events"] / found["seconds"]
                results[mode].append({**found, "rate": rate})
                print(f"  round {n + 1} {mode:>4}: {found['events']} events in "
                      f"{found['seconds']:.3f} s = {rate:9.0f} events/s, cpu {found['cpu']:.0%}",
                      flush=True)
    full = statistics.median(r["rate"] for r in results["full"])
    bare = statistics.median(r["rate"] for r in results["bare"])
    lost = [r["events"] for r in results["full"] + results["bare"] if r["events"] != count]
    ratio = full / bare
    print(f"full ingestion {full:.0f} events/s, bare parsing {bare:.0f} events/s, "
          f"ratio {ratio:.2f}")
    if lost:
        print(f"FAIL events lost: counted {lost} of {count}")
    if args.smoke:
        print(f"INFO smoke run: full {full:.0f} events/s, ratio {ratio:.2f}")
    else:
        print(f"{'PASS' if full >= 100_000 else 'FAIL'} AMI full ingestion {full:.0f} "
              f">= 100000 events/s")
        print(f"{'PASS' if ratio >= 0.6 else 'FAIL'} AMI full ingestion >= 0.6 x bare parsing "
              f"({ratio:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
