"""wire.peek_event / peek_variable / is_plain_block: what the protocol may learn from a block without parsing it
must equal what Message.parse finds (captures: tests/fixtures/ami/*.from_asterisk.raw, copies
of ../shared/asterisk/transcripts2)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

import ami_replay
from ccengine.ami.wire import BlockSplitter, Message, is_plain_block, peek_event, peek_variable

_RAW = sorted(p.name for p in ami_replay.fixture_path("").glob("*.from_asterisk.raw"))

# Line pieces that exercise every branch of Message.parse: separators, blanks, CR, Unicode
# whitespace and separators, invalid UTF-8.
_PIECES = st.sampled_from([b"Event", b"event", b"Queue", b"Event: ", b": ", b":", b" ", b"\t",
                           b"\r", b"\n", b"\r\n", b"x", b"1", b"VarSet", b"\xc2\xa0", b"\xff",
                           b"\xe2\x80\xa8", b"\xc3\xa9", b"-", b"(", b"Variable: QUEUESTATUS"])


@given(st.lists(_PIECES, max_size=30).map(b"".join))
@settings(max_examples=3000, deadline=None)
def test_peek_agrees_with_parse_on_random_blocks(block):
    """For any block, a peeked event name is parse()'s `.event`, and a plain block parses
    without a malformed line."""
    message = Message.parse(block)
    name = peek_event(block)
    if name is not None:
        assert name == message.event
    if is_plain_block(block):
        assert message.malformed == []


_VARIABLE_PIECES = st.sampled_from([b"Variable", b"variable", b"VARIABLE", b"VariableX", b": ",
                                    b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"Value: ",
                                    b"QUEUESTATUS", b"x", b"\xc2\xa0", b"\xff", b"\x0b",
                                    b"Event: VarSet\r\n"])


@given(st.lists(_VARIABLE_PIECES, max_size=30).map(b"".join))
@settings(max_examples=3000, deadline=None)
def test_peeked_variable_is_parse_variable_on_random_plain_blocks(block):
    """For any plain block, a peeked Variable is parse()'s first `Variable` value."""
    if not is_plain_block(block):
        return
    variable = peek_variable(block)
    if variable is not None:
        assert variable == Message.parse(block).get("Variable")


def test_every_captured_event_is_plain_and_peeked_exactly():
    """Every event block Asterisk 22 sent is plain and its peeked name is its parsed `.event`."""
    events = [b for capture in _RAW for b in BlockSplitter().feed(ami_replay.raw_bytes(capture))
              if Message.parse(b).event is not None]
    assert len(events) > 100
    for block in events:
        assert is_plain_block(block)
        assert peek_event(block) == Message.parse(block).event
