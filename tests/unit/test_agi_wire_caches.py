"""The shortcuts in agi/wire.py (shared replies, known environment keys, validated names, the
ASCII check) give exactly what the full path gives. Reply formats: agi1_suite
(tests/fixtures/agi, copy of ../shared/asterisk/transcripts2)."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ccengine.agi import wire
from ccengine.agi.wire import AgiReply, ReplyParser, UnsafeAgiText, identifier, parse_environment


def test_repeated_replies_equal_a_fresh_parse_and_data_is_never_shared():
    """`200 result=1` and `200 result=0 endpos=3404` parse the same every time; replies with
    data (caller text) are not kept."""
    parser = ReplyParser()
    for _ in range(3):
        assert parser.feed(b"200 result=1") == [AgiReply(200, "1")]
        assert parser.feed(b"200 result=0 endpos=3404") == [AgiReply(200, "0", None, 3404)]
        assert parser.feed(b"200 result=1 (CC Caller)") == [AgiReply(200, "1", "CC Caller")]
    assert b"200 result=1 (CC Caller)" not in parser._plain
    assert b"200 result=1 (CC Caller)" not in wire._COMMON_REPLIES


def test_cached_reply_is_not_used_inside_a_usage_text():
    """A line inside a multi-line 520 usage text is usage text, even if it looks like a reply."""
    parser = ReplyParser()
    parser.feed(b"200 result=1")
    assert parser.feed(b"520-Invalid command syntax.  Proper usage follows:") == []
    assert parser.feed(b"200 result=1") == []
    assert parser.feed(b"520 End of proper usage.")[0].usage.endswith("200 result=1")


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_check_refuses_exactly_the_control_characters(text):
    """An ASCII text is refused by quote() exactly when it holds a C0 control or DEL."""
    unsafe = any(ord(ch) < 32 or ord(ch) == 127 for ch in text)
    if unsafe:
        with pytest.raises(UnsafeAgiText):
            wire.quote(text)
    else:
        assert wire.quote(text).startswith('"')


def test_identifier_cache_still_refuses_unsafe_names():
    """A name validated before is returned as the same Word; unsafe names are still refused."""
    assert identifier("CC_QUEUE") is identifier("CC_QUEUE")
    for bad in ("CC QUEUE", "../x", "x\ny", "", 5):
        with pytest.raises(UnsafeAgiText):
            identifier(bad)


def test_known_and_unknown_environment_keys_parse_alike():
    """A standard key, the same key with other case or blanks, and an unknown key all parse as
    the full path does."""
    env = parse_environment([b"agi_channel: PJSIP/a", b" AGI_Language : en", b"agi_custom_x: 1",
                             b"agi_callerid:nospace", b"not_agi: 2"])
    assert dict(env.raw) == {"agi_channel": "PJSIP/a", "agi_language": "en", "agi_custom_x": "1"}
