"""VarSet events of variables nobody reads are dropped before a parse and counted; the two the
engine reads (QUEUESTATUS, QUEUE_WITHDRAW_INFO) are parsed and delivered as before. Event text:
transcripts3 load_2cps_ami (tests/fixtures/ami/load_2cps_ami.raw.xz, Asterisk 22.10.1, 120
calls at 2 calls/s; tests/fixtures/transcripts3_README.md)."""
from __future__ import annotations

import lzma
from functools import lru_cache

import pytest

import ami_replay
from ami_replay import ClientHarness
from ccengine.ami import protocol, wire
from ccengine.ami.wire import BlockSplitter, Message, is_plain_block, peek_variable
from ccengine.queues.feed import VARSET_VARIABLES, QueueFeed
from ccengine.queues.picture import QueuePicture
from ccengine.stats.queue_events import QueueEventConsumer

CAPTURE = ami_replay.fixture_path("load_2cps_ami.raw.xz")


@lru_cache(maxsize=1)
def captured_events() -> tuple[bytes, ...]:
    """Every event block of load_2cps_ami (37,806), in recorded order."""
    blocks = BlockSplitter().feed(lzma.decompress(CAPTURE.read_bytes()))
    return tuple(b for b in blocks if b.startswith(b"Event: "))


@pytest.fixture
def parsed(monkeypatch):
    """The `.event` and Variable of every block the protocol parses."""
    seen: list[tuple[str | None, str | None]] = []

    class Spy(wire.Message):
        __slots__ = ()

        @classmethod
        def parse(cls, block):
            message = wire.Message.parse(block)
            seen.append((message.event, message.get("Variable")))
            return message
    monkeypatch.setattr(protocol, "Message", Spy)
    return seen


def _receive(harness: ClientHarness, blocks) -> None:
    """Feed the blocks as one read and let the protocol drain them (AmiProtocol.BATCH blocks
    per reactor turn: the harness's clock runs the next turns)."""
    harness.receive([b + b"\r\n\r\n" for b in blocks])
    while harness.protocol._backlog:
        harness.clock.advance(0)


def _varsets(blocks) -> list[Message]:
    return [m for m in map(Message.parse, blocks) if m.event == "VarSet"]


def test_peek_variable_equals_parse_on_every_captured_varset():
    """Every captured VarSet is plain, and its peeked Variable is parse()'s."""
    varsets = [b for b in captured_events() if b.startswith(b"Event: VarSet\r\n")]
    assert len(varsets) == 18783        # the capture's summary.txt
    for block in varsets:
        assert is_plain_block(block)
        assert peek_variable(block) == Message.parse(block).get("Variable")


def test_varsets_nobody_reads_are_counted_not_parsed(parsed):
    """With the queue feed's subscriptions, of the capture's VarSets only QUEUESTATUS and
    QUEUE_WITHDRAW_INFO are parsed and reach the feed; the others are counted as dropped
    (reason varset_variable) and every event is still counted."""
    harness = ClientHarness()
    harness.login(with_events=False)
    feed = QueueFeed(harness.client, QueuePicture(harness.clock))
    delivered = []
    feed.on(("VarSet",), delivered.append)
    blocks = captured_events()
    varsets = _varsets(blocks)
    read = [m for m in varsets if m["Variable"] in VARSET_VARIABLES]
    # 120 QUEUESTATUS (one per call, when its Queue() returns), no QUEUE_WITHDRAW_INFO.
    assert len(read) == 120 and len(varsets) == 18783
    parsed.clear()
    _receive(harness, blocks)
    assert [(m["Variable"], m["Uniqueid"]) for m in delivered] == [
        (m["Variable"], m["Uniqueid"]) for m in read]
    assert [v for e, v in parsed if e == "VarSet"] == [m["Variable"] for m in read]
    assert harness.sample("ccengine_ami_unparsed_events_total", server="asterisk",
                          reason="varset_variable") == len(varsets) - len(read)
    assert harness.sample("ccengine_ami_events_total", server="asterisk") == len(blocks)


def test_a_subscription_without_variables_gets_every_varset(parsed):
    """A VarSet subscription that names no variables reads them all: none is dropped."""
    harness = ClientHarness()
    harness.login(with_events=False)
    QueueFeed(harness.client, QueuePicture(harness.clock))
    everything = []
    harness.client.subscribe("VarSet", everything.append)
    blocks = captured_events()[:1500]
    _receive(harness, blocks)
    assert len(everything) == len(_varsets(blocks)) > 100
    assert not harness.sample("ccengine_ami_unparsed_events_total", server="asterisk",
                              reason="varset_variable")


def test_star_subscriber_gets_every_varset(parsed):
    """A '*' subscriber makes every VarSet wanted, whatever its variable."""
    harness = ClientHarness()
    harness.login(with_events=False)
    harness.client.subscribe("VarSet", lambda m: None, variables=("QUEUESTATUS",))
    everything = []
    harness.client.subscribe("*", everything.append)
    blocks = captured_events()[:1500]
    _receive(harness, blocks)
    assert [m.event for m in everything] == [Message.parse(b).event for b in blocks]


def test_removing_the_restricted_subscription_drops_every_varset(parsed):
    """After the only VarSet subscription is removed, VarSet is an unsubscribed event."""
    harness = ClientHarness()
    harness.login(with_events=False)
    remove = harness.client.subscribe("VarSet", lambda m: None, variables=("QUEUESTATUS",))
    remove()
    blocks = [b for b in captured_events()[:1500] if b.startswith(b"Event: VarSet\r\n")]
    parsed.clear()
    _receive(harness, blocks)
    assert parsed == []
    assert harness.sample("ccengine_ami_unparsed_events_total", server="asterisk",
                          reason="unsubscribed") == len(blocks)


def test_the_statistics_read_only_variables_the_feed_lets_through():
    """Every VarSet variable the queue statistics read is one the feed subscribes to."""
    assert set(QueueEventConsumer.VARIABLES) <= VARSET_VARIABLES


def test_variables_are_refused_for_other_events():
    """`variables=` is only meaningful for VarSet; elsewhere it is an error, not ignored."""
    harness = ClientHarness()
    with pytest.raises(ValueError):
        harness.client.subscribe("Hangup", lambda m: None, variables=("X",))
