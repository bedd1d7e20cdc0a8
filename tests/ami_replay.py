"""Replay recorded Asterisk 22 AMI captures (tests/fixtures/ami/) into the AMI layer.

Importable from any test (`tests/` is on pytest's pythonpath): `import ami_replay`.
Fixtures are copies of ../shared/asterisk/transcripts{,2}/; name the capture in your test.

Reading captures
- `raw_bytes("ami9_pause_rna_incall")` -> the exact bytes Asterisk sent on connection c1
  (`*.ami.c1.from_asterisk.raw`, banner included; `connection=2` for c2).
- `raw_messages(capture)` -> those bytes split and parsed (`split_raw` gives banner + blocks).
- `read_transcript(capture)` -> `Packet`s of a `*.ami.txt` log, both directions, in order
  (`### <time> [cN] sent|received` headers; `>>` sent lines, `<<` received lines; `<<~ 'repr'`
  lines with a bare CR/LF; `### ... note:` packets come back with direction "note").
- `received_messages(capture, connection=None)` -> every received packet except the banner and
  the `[connection closed ...]` markers, as `Message`s (connection: "c1", ... or None for all).
  Works for the first set (a_answered, b_abandoned, c_member_actions, d_queuestatus_*), which
  has no `.raw` files.
- `events(capture, "QueueCallerJoin", ...)` -> received events with those names (all if none).
- `sent_actions(capture)` -> the exact bytes the lab client wrote per action (Secret masked).

Feeding them in
- `feed_protocol(protocol, items, chunk_size=None)`: bytes / Messages / blocks into
  `AmiProtocol.dataReceived` (optionally cut into chunks), as if read from the socket.
- `feed_client(client, messages)`: events into `AmiClient.dispatch` (the path the protocol
  uses for events), responses skipped; returns how many events were dispatched.
- `retag(message, action_id)`: a recorded response/list item with the ActionID your code used.
- `ClientHarness`: a real `AmiClient` on a fake endpoint and `task.Clock`; `login()` replays the
  banner and the ami4 login answer; `written()` parses what the client wrote; `answer(...)`
  replies to the last action with recorded messages; `close()` drops the connection.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from twisted.internet.address import IPv4Address
from twisted.internet.defer import fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from ccengine.ami.client import AmiClient, AmiSettings
from ccengine.ami.metrics import AmiMetrics
from ccengine.ami.wire import BlockSplitter, Message
from queue_feed_helpers import queue_labels

FIXTURES = Path(__file__).parent / "fixtures" / "ami"
_HEADER = re.compile(r"^### (\S+ \S+) (?:\[(c\d+)\] )?(sent|received|note:.*)$")


def fixture_path(name: str) -> Path:
    return FIXTURES / name


def raw_bytes(capture: str, connection: int = 1) -> bytes:
    name = capture if capture.endswith(".raw") else f"{capture}.ami.c{connection}.from_asterisk.raw"
    return fixture_path(name).read_bytes()


def split_raw(data: bytes) -> tuple[str | None, list[bytes]]:
    """(banner, blocks) of a byte stream; fails if bytes are left without a terminator."""
    splitter = BlockSplitter()
    blocks = splitter.feed(data)
    assert splitter.pending_bytes == 0, "capture ends inside a block"
    return splitter.banner, blocks


def raw_messages(capture: str, connection: int = 1) -> list[Message]:
    return [Message.parse(block) for block in split_raw(raw_bytes(capture, connection))[1]]


@dataclass(frozen=True)
class Packet:
    time: str
    connection: str | None  # "c1", "c2" ... (None in the first capture set)
    direction: str  # "sent", "received" or "note"
    lines: tuple[str, ...] = field(default=())

    @property
    def is_banner(self) -> bool:
        return self.direction == "received" and len(self.lines) == 1 and \
            self.lines[0].startswith("Asterisk Call Manager/")

    @property
    def is_close(self) -> bool:
        return self.direction == "received" and len(self.lines) == 1 and \
            self.lines[0].startswith("[connection closed")

    @property
    def block(self) -> bytes:
        """The packet as on the wire, without its terminating blank line."""
        return "\r\n".join(self.lines).encode("utf-8")

    @property
    def message(self) -> Message:
        return Message.parse(self.block)


def read_transcript(capture: str) -> list[Packet]:
    name = capture if capture.endswith(".txt") else f"{capture}.ami.txt"
    packets: list[Packet] = []
    current: dict | None = None

    def close() -> None:
        if current is not None:
            packets.append(Packet(current["time"], current["conn"], current["dir"],
                                  tuple(current["lines"])))

    for line in fixture_path(name).read_text(encoding="utf-8").split("\n"):
        header = _HEADER.match(line)
        if header:
            close()
            direction = "note" if header[3].startswith("note:") else header[3]
            current = {"time": header[1], "conn": header[2], "dir": direction, "lines": []}
            if direction == "note":
                current["lines"].append(header[3][len("note:"):].strip())
        elif line.startswith(("<<~ ", ">>~ ")) and current is not None:
            current["lines"].append(ast.literal_eval(line[4:]))
        elif line.startswith(("<< ", ">> ")) and current is not None:
            current["lines"].append(line[3:])
        elif line.strip():
            raise ValueError(f"{name}: unexpected line {line!r}")
    close()
    return packets


def received_messages(capture: str, connection: str | None = None) -> list[Message]:
    return [p.message for p in read_transcript(capture)
            if p.direction == "received" and not p.is_banner and not p.is_close
            and (connection is None or p.connection == connection)]


def events(capture: str, *names: str, connection: str | None = None) -> list[Message]:
    wanted = {n.lower() for n in names}
    return [m for m in received_messages(capture, connection)
            if m.event is not None and (not wanted or m.event.lower() in wanted)]


def sent_actions(capture: str, connection: str | None = None) -> list[bytes]:
    return [p.block + b"\r\n\r\n" for p in read_transcript(capture)
            if p.direction == "sent" and (connection is None or p.connection == connection)]


def retag(message: Message, action_id: str) -> Message:
    return Message([(k, action_id if k.lower() == "actionid" else v) for k, v in message.items()])


def _to_bytes(item: bytes | Message) -> bytes:
    return item.to_bytes() if isinstance(item, Message) else item


def feed_protocol(protocol, items: bytes | Iterable[bytes | Message],
                  chunk_size: int | None = None) -> None:
    """Deliver bytes (a whole stream) or Messages/blocks-with-terminator to dataReceived."""
    data = items if isinstance(items, bytes) else b"".join(_to_bytes(i) for i in items)
    step = chunk_size or len(data) or 1
    for start in range(0, len(data), step):
        protocol.dataReceived(data[start:start + step])


def feed_client(client: AmiClient, messages: Iterable[Message]) -> int:
    count = 0
    for message in messages:
        if message.event is not None:
            client.dispatch(message)
            count += 1
    return count


class _FakeTransport(StringTransport):
    """Closing it delivers connectionLost on the next clock turn, like a real TCP transport."""

    def __init__(self, clock: Clock):
        super().__init__(peerAddress=IPv4Address("TCP", "127.0.0.1", 5038))
        self.clock = clock
        self.protocol = None
        self.closed = False

    def loseConnection(self) -> None:
        super().loseConnection()
        self._close_soon()

    def abortConnection(self) -> None:
        super().abortConnection()
        self._close_soon()

    def _close_soon(self) -> None:
        if not self.closed:
            self.closed = True
            self.clock.callLater(0, self.protocol.connectionLost, Failure(ConnectionDone()))


class FakeAmiEndpoint:
    """An IStreamClientEndpoint that connects at once to a `_FakeTransport` (or refuses)."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.connections: list[tuple[object, _FakeTransport]] = []
        self.refuse = 0  # refuse this many next attempts

    def connect(self, factory):
        if self.refuse:
            self.refuse -= 1
            return fail(ConnectionRefusedError("fake endpoint refused"))
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5038))
        transport = _FakeTransport(self.clock)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.connections.append((protocol, transport))
        return succeed(protocol)


class ClientHarness:
    """A started AmiClient with a fake endpoint, a Clock and a fresh metrics registry."""

    def __init__(self, settings: AmiSettings | None = None, secret: str = "s3cret-lab"):
        self.clock = Clock()
        self.registry = CollectorRegistry()
        self.metrics = AmiMetrics(self.registry)
        self.endpoint = FakeAmiEndpoint(self.clock)
        self.client = AmiClient(settings or AmiSettings(), secret, clock=self.clock,
                                endpoint=self.endpoint, metrics=self.metrics,
                                jitter=lambda: 0.0)
        self.client.startService()

    @property
    def protocol(self):
        return self.endpoint.connections[-1][0]

    @property
    def transport(self) -> _FakeTransport:
        return self.endpoint.connections[-1][1]

    def receive(self, items: bytes | Iterable[bytes | Message]) -> None:
        feed_protocol(self.protocol, items)

    def written(self) -> list[Message]:
        return [Message.parse(b) for b in self.transport.value().split(b"\r\n\r\n") if b]

    def answer(self, recorded: Message | Iterable[Message]) -> None:
        """Reply to the last written action with recorded messages, retagged to its ActionID."""
        action_id = self.written()[-1].action_id
        items = [recorded] if isinstance(recorded, Message) else list(recorded)
        self.receive([retag(m, action_id) if m.action_id else m for m in items])

    def login(self, with_events: bool = True) -> None:
        """Banner, then ami4's `Authentication accepted` (and its FullyBooted/SuccessfulAuth)."""
        stream = raw_bytes("ami4_login_ping_events", 1)
        banner_end = stream.index(b"\r\n") + 2
        self.receive(stream[:banner_end])
        recorded = received_messages("ami4_login_ping_events", "c1")
        self.answer(recorded[0] if not with_events else recorded[:3])

    def close(self) -> None:
        """Asterisk closes the connection (EOF)."""
        self.transport.loseConnection()
        self.clock.advance(0)

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, queue_labels(name, labels))
