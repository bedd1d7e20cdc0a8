"""Events no subscriber wants are counted but not parsed; nothing else changes (captures:
tests/fixtures/ami/a_answered and d_queuestatus_waiting_caller, copies of
../shared/asterisk/transcripts)."""
from __future__ import annotations

import pytest

import ami_replay
from ami_replay import ClientHarness
from ccengine.ami import protocol, wire


@pytest.fixture
def parsed(monkeypatch):
    """Records the `.event` of every block the protocol parses (the replay helpers' own parsing
    is not counted)."""
    seen: list[str | None] = []

    class Spy(wire.Message):
        __slots__ = ()

        @classmethod
        def parse(cls, block):
            message = wire.Message.parse(block)
            seen.append(message.event)
            return message
    monkeypatch.setattr(protocol, "Message", Spy)
    return seen


def test_unwanted_events_are_counted_without_parsing(parsed):
    """With one subscription, only its events are parsed; every event is still counted."""
    harness = ClientHarness()
    harness.login(with_events=False)
    joins = []
    harness.client.subscribe("QueueCallerJoin", joins.append)
    recorded = [m for m in ami_replay.received_messages("a_answered") if m.event][:60]
    parsed.clear()
    harness.receive(recorded)
    assert [m.event for m in joins] == ["QueueCallerJoin"]
    assert parsed == ["QueueCallerJoin"]
    assert harness.sample("ccengine_ami_events_total", server="asterisk") == 60


def test_star_subscriber_gets_every_event_parsed(parsed):
    """A '*' subscriber makes every event wanted, so each one is parsed and delivered."""
    harness = ClientHarness()
    harness.login(with_events=False)
    everything = []
    harness.client.subscribe("*", everything.append)
    recorded = [m for m in ami_replay.received_messages("a_answered") if m.event][:20]
    harness.receive(recorded)
    assert everything == recorded
    assert harness.sample("ccengine_ami_events_total", server="asterisk") == 20


def test_malformed_unwanted_event_is_still_reported():
    """An event nobody wants is parsed after all when it has a malformed line, which is counted."""
    harness = ClientHarness()
    harness.login(with_events=False)
    harness.receive(b"Event: Newexten\r\nno colon here\r\nChannel: PJSIP/x\r\n\r\n")
    assert harness.sample("ccengine_ami_bad_events_total", server="asterisk", reason="malformed_line") == 1
    assert harness.sample("ccengine_ami_events_total", server="asterisk") == 1


def test_events_are_parsed_while_a_list_action_is_pending(parsed):
    """While QueueStatus is pending its items are collected, unwanted events included
    (d_queuestatus_waiting_caller)."""
    harness = ClientHarness()
    harness.login()
    pending = harness.client.send_list_action("QueueStatus", Queue="inbound")
    parsed.clear()
    answer = [m for m in ami_replay.received_messages("d_queuestatus_waiting_caller")
              if m.action_id == "lab-6"]
    harness.answer(answer)
    items = []
    pending.addCallback(items.extend)
    assert [m.event for m in items] == [m.event for m in answer]
    assert parsed == [m.event for m in answer]
