"""ccengine.ami.wire: AMI messages, block splitting and action serialisation (pure, no sockets).

Fixtures are copies of ../shared/asterisk/transcripts{,2}/ captures (Asterisk 22.10.1).
"""
from __future__ import annotations

import random

import pytest

import ami_replay
from ccengine.ami.wire import (Action, AmiFrameTooLarge, BlockSplitter, Message,
                               UnsafeAmiValue)

RAW_CAPTURES = sorted(p.name for p in ami_replay.FIXTURES.glob("*.from_asterisk.raw"))


def test_headers_are_case_insensitive():
    """A header is found whatever the case of the name asked for (c_member_actions.ami.txt)."""
    added = ami_replay.events("c_member_actions", "QueueMemberAdded")[0]
    assert added["queue"] == "supervisor"
    assert added.get("QUEUE") == "supervisor"
    assert added.get("Missing") is None
    assert "membername" in added
    assert added.event == "QueueMemberAdded" and added.response is None


def test_empty_value_after_colon_is_an_empty_string():
    """`PausedReason: ` (nothing after the colon) parses to an empty value, not malformed."""
    added = ami_replay.events("c_member_actions", "QueueMemberAdded")[0]
    assert added["PausedReason"] == ""
    assert added.malformed == []
    assert Message.parse(b"Event: X\r\nAccountID:")["AccountID"] == ""


def test_repeated_output_headers_are_all_kept():
    """Repeated headers (Command's `Output:`, ami4 note 3) are kept in order via getall()."""
    block = (b"Response: Success\r\nActionID: 7\r\nMessage: Command output follows\r\n"
             b"Output: line one\r\nOutput:   indented two\r\noutput: three")
    message = Message.parse(block)
    assert message.getall("Output") == ["line one", "  indented two", "three"]
    assert message["Output"] == "line one"
    command = [m for m in ami_replay.raw_messages("ami4_login_ping_events")
               if m.get("Message") == "Command output follows"][0]
    assert command.getall("output") == [
        "Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux on 2026-11-22 16:09:10 UTC"]


def test_properties_and_value_split_on_first_colon():
    """`.response`, `.action_id` and a value holding colons (`RequestType: Action: Ping`, ami4)."""
    denied = ami_replay.events("ami4_login_ping_events", "RequestNotAllowed")[0]
    assert denied["RequestType"] == "Action: Ping"
    response = ami_replay.received_messages("ami4_login_ping_events", "c2")[0]
    assert (response.response, response.action_id, response["Message"]) == (
        "Error", "c2-1", "Permission denied")


def test_lines_without_colon_are_recorded_as_malformed():
    """A line with no colon is listed in `.malformed` and the other headers still parse."""
    message = Message.parse(b"Event: QueueCallerJoin\r\ngarbage line\r\nQueue: inbound\r\nQueu")
    assert message.malformed == ["garbage line", "Queu"]
    assert message["Queue"] == "inbound"


def test_bare_lf_and_invalid_utf8_are_tolerated():
    """Bare LF line ends parse like CRLF and invalid UTF-8 becomes U+FFFD instead of raising."""
    message = Message.parse(b"Event: Newchannel\nCallerIDName: Zhang \xff\xfe\n")
    assert message.event == "Newchannel"
    assert message["CallerIDName"] == "Zhang \ufffd\ufffd"


def test_utf8_values_decode():
    """UTF-8 caller names decode as text."""
    assert Message.parse("CallerIDName: 张三".encode())["CallerIDName"] == "张三"


def test_message_round_trips_to_bytes():
    """Message.to_bytes() gives back the captured block plus its terminator."""
    _, blocks = ami_replay.split_raw(ami_replay.raw_bytes("ami9_pause_rna_incall"))
    for block in blocks:
        assert Message.parse(block).to_bytes() == block + b"\r\n\r\n"


@pytest.mark.parametrize("capture", RAW_CAPTURES)
def test_every_block_of_raw_captures_parses_cleanly(capture):
    """Every block of each raw capture is an Event or Response with no malformed line."""
    banner, blocks = ami_replay.split_raw((ami_replay.FIXTURES / capture).read_bytes())
    assert banner == "Asterisk Call Manager/11.0.0"
    assert blocks
    for block in blocks:
        message = Message.parse(block)
        assert message.malformed == []
        assert message.event is not None or message.response is not None


def test_originate_response_is_an_event_with_a_response_header():
    """OriginateResponse carries both `Event:` and `Response: Failure` (ami5_originate)."""
    failed = ami_replay.events("ami5_originate", "OriginateResponse")[1]
    assert (failed.event, failed.response, failed.action_id) == (
        "OriginateResponse", "Failure", "orig-noext")


@pytest.mark.parametrize("capture", RAW_CAPTURES)
def test_random_chunking_gives_the_same_blocks(capture):
    """Feeding a raw capture in random chunks of 1..4096 bytes yields the same blocks and banner."""
    data = (ami_replay.FIXTURES / capture).read_bytes()
    expected_banner, expected = ami_replay.split_raw(data)
    for seed in range(8):
        rng = random.Random(seed)
        splitter = BlockSplitter()
        blocks, pos = [], 0
        while pos < len(data):
            size = rng.choice((1, 2, 3, rng.randint(1, 64), rng.randint(1, 4096)))
            blocks.extend(splitter.feed(data[pos:pos + size]))
            pos += size
        assert (splitter.banner, blocks) == (expected_banner, expected)
        assert splitter.pending_bytes == 0


def test_banner_shares_a_read_with_the_first_response():
    """The banner line, with no blank line after it, is split off the first block (ami10 c3)."""
    splitter = BlockSplitter()
    blocks = splitter.feed(ami_replay.raw_bytes("ami10_restart", 3))
    assert splitter.banner == "Asterisk Call Manager/11.0.0"
    assert Message.parse(blocks[0])["Message"] == "Authentication accepted"


def test_stream_without_banner_keeps_its_first_block():
    """A first line with a colon is a header, not a banner."""
    splitter = BlockSplitter()
    assert splitter.feed(b"Event: Ping\r\n\r\n") == [b"Event: Ping"]
    assert splitter.banner is None


def test_oversized_block_raises():
    """More than max_block_size bytes without a terminator raise AmiFrameTooLarge."""
    splitter = BlockSplitter(max_block_size=100)
    splitter.feed(b"Asterisk Call Manager/11.0.0\r\n")
    with pytest.raises(AmiFrameTooLarge):
        splitter.feed(b"Event: X\r\nData: " + b"a" * 200)


def _captured_action(capture: str, name: str, nth: int = 0) -> bytes:
    actions = [a for a in ami_replay.sent_actions(capture) if a.startswith(f"Action: {name}\r\n".encode())]
    return actions[nth]


@pytest.mark.parametrize("name,nth,fields,action_id", [
    ("QueueAdd", 0, [("Queue", "supervisor"), ("Interface", "PJSIP/1005"),
                     ("MemberName", "Supervisor 1005"), ("StateInterface", "PJSIP/1005"),
                     ("Penalty", 0), ("Paused", False)], "lab-2"),
    ("QueueAdd", 1, {"Queue": "inbound", "Interface": "Local/1005@agents/n",
                     "MemberName": "Agent 1005 (Local)", "StateInterface": "PJSIP/1005",
                     "Penalty": 1, "Paused": True, "Reason": "login-paused"}, "lab-3"),
    ("QueuePause", 0, [("Queue", "supervisor"), ("Interface", "PJSIP/1005"),
                       ("Paused", "true"), ("Reason", "lunch")], "lab-4"),
    ("QueuePause", 1, [("Interface", "Local/1005@agents/n"), ("Paused", "false")], "lab-5"),
    ("QueueRemove", 0, [("Queue", "supervisor"), ("Interface", "PJSIP/1005")], "lab-7"),
])
def test_action_bytes_equal_the_lab_clients(name, nth, fields, action_id):
    """QueueAdd/QueuePause/QueueRemove serialise byte for byte as in c_member_actions.ami.txt."""
    assert Action(name, fields, action_id).to_bytes() == _captured_action(
        "c_member_actions", name, nth)


def test_ping_without_fields():
    """An action without fields is `Action`, `ActionID`, blank line (ami4 Ping)."""
    assert Action("Ping", action_id="c1-2").to_bytes() == _captured_action(
        "ami4_login_ping_events", "Ping")


def test_repeated_fields_are_kept_in_order():
    """Fields given as pairs may repeat (Originate's `Variable:`)."""
    action = Action("Originate", [("Variable", "A=1"), ("Variable", "B=2")], "x")
    assert action.to_bytes() == b"Action: Originate\r\nVariable: A=1\r\nVariable: B=2\r\nActionID: x\r\n\r\n"


@pytest.mark.parametrize("bad", ["Alice\r\nAction: Originate", "x\ny", "x\rAction: Hangup", "a\x00b"])
def test_control_characters_in_values_are_refused(bad):
    """CR, LF or NUL in any value raises UnsafeAmiValue, so no second action can be formed."""
    with pytest.raises(UnsafeAmiValue):
        Action("Setvar", [("Variable", "CC_CUSTOMER_NAME"), ("Value", bad)])
    with pytest.raises(UnsafeAmiValue):
        Action("Ping", action_id=bad)
    with pytest.raises(ValueError):
        Action("Ping" + bad)


@pytest.mark.parametrize("name", ["", "Bad Name ", "Na:me", "X\r\nAction: Hangup", "ActionID", "action"])
def test_bad_or_reserved_field_names_are_refused(name):
    """Empty names, colons, CR/LF, surrounding spaces and Action/ActionID as fields are refused."""
    with pytest.raises(UnsafeAmiValue):
        Action("Ping", [(name, "v")])


def test_secret_is_masked_in_repr():
    """The Login secret never appears in an Action's repr (which logs may show)."""
    action = Action("Login", [("Username", "ccengine"), ("Secret", "hunter2")])
    assert "hunter2" not in repr(action)
    assert b"Secret: hunter2\r\n" in action.to_bytes()
