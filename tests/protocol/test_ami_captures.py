"""The replay helper (tests/ami_replay.py) reads the AMI captures faithfully.

Fixtures: tests/fixtures/ami/ copies of ../shared/asterisk/transcripts and transcripts2.
"""
from __future__ import annotations

import pytest

import ami_replay
from ccengine.ami.wire import Message

RAW = sorted(p.name for p in ami_replay.FIXTURES.glob("*.from_asterisk.raw"))
TRANSCRIPTS = sorted(p.name[:-len(".ami.txt")] for p in ami_replay.FIXTURES.glob("*.ami.txt"))


@pytest.mark.parametrize("raw_name", RAW)
def test_transcript_packets_equal_raw_blocks(raw_name):
    """Each `.ami.txt` log's received packets of connection cN equal the blocks of its `.raw` file."""
    capture, rest = raw_name.split(".ami.")
    connection = rest.split(".")[0]
    banner, blocks = ami_replay.split_raw(ami_replay.raw_bytes(raw_name))
    packets = [p for p in ami_replay.read_transcript(capture)
               if p.direction == "received" and p.connection == connection]
    assert packets[0].is_banner and packets[0].lines[0] == banner
    assert [p.block for p in packets if not p.is_banner and not p.is_close] == blocks


@pytest.mark.parametrize("capture", TRANSCRIPTS)
def test_every_transcript_parses_to_typed_messages(capture):
    """Every received packet of every transcript is an Event or Response with no malformed line,
    and every sent packet is an Action with an ActionID (or the ami4 probe without Action)."""
    for message in ami_replay.received_messages(capture):
        assert message.malformed == []
        assert message.event is not None or message.response is not None
    for block in ami_replay.sent_actions(capture):
        sent = Message.parse(block[:-4])
        assert sent.action_id and ("Action" in sent or sent.get("Foo") == "bar")


def test_events_filter_and_feed_client_counts():
    """events() filters by name and feed_client dispatches events only (b_abandoned)."""
    abandons = ami_replay.events("b_abandoned", "QueueCallerAbandon")
    assert len(abandons) == 1 and abandons[0]["HoldTime"] == "10"
    harness = ami_replay.ClientHarness()
    seen = []
    harness.client.subscribe("*", seen.append)
    mixed = ami_replay.received_messages("b_abandoned")
    assert ami_replay.feed_client(harness.client, mixed) == len(seen) == sum(
        1 for m in mixed if m.event)
