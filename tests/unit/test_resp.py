"""The script lane's RESP encoding and reply parser (ccengine/store/resp.py).

Ground truth for the request bytes is redis-py's own packer (the lane must send exactly what
redis-py sends); the replies are RESP2 as documented at redis.io/docs/latest/develop/reference/
protocol-spec (no capture of Redis traffic exists in ../shared; Redis is not Asterisk)."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from redis.connection import Connection

from ccengine.store.resp import MAX_BULK, RespError, _Incomplete, _parse, encode, lane_target

ARG = st.one_of(st.text(max_size=40), st.integers(-10**12, 10**12),
                st.floats(allow_nan=False, allow_infinity=False), st.binary(max_size=40))


@given(st.lists(ARG, max_size=12))
def test_encode_is_byte_for_byte_what_redis_py_sends(args):
    """Every argument kind the stores pass (str incl. CJK, int, float, bytes) packs to the same
    bytes as redis-py's Connection.pack_command (after a command name: redis-py splits the
    first argument on spaces)."""
    command = ("EVALSHA", *args)
    assert encode(command) == b"".join(Connection().pack_command(*command))


def test_encode_refuses_what_redis_py_would_not_send():
    """None and bools are not silently turned into text."""
    for bad in (None, True, object()):
        with pytest.raises(TypeError):
            encode(("SET", "k", bad))


REPLIES = [
    (b"+OK\r\n", "OK"),
    (b":42\r\n", 42),
    (b":-3\r\n", -3),
    (b"$6\r\n\xe6\x9d\x8e\xe9\x9b\xb7\r\n", "李雷"),
    (b"$0\r\n\r\n", ""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n*2\r\n$4\r\nname\r\n$2\r\nab\r\n:1\r\n:0\r\n", [["name", "ab"], 1, 0]),
    (b"$4\r\na\r\nb\r\n", "a\r\nb"),     # CRLF inside a bulk string is data
]


@pytest.mark.parametrize("data,value", REPLIES)
def test_every_split_of_a_reply_parses_to_the_same_value(data, value):
    """A reply cut anywhere is incomplete until its last byte arrives, then parses whole."""
    for cut in range(len(data)):
        with pytest.raises(_Incomplete):
            _parse(data[:cut], 0)
    assert _parse(data, 0) == (value, len(data))


def test_error_reply_is_returned_as_a_value_not_raised():
    """`-NOSCRIPT ...` is a reply (paired with its request), not a broken stream."""
    value, pos = _parse(b"-NOSCRIPT No matching script.\r\n:1\r\n", 0)
    assert isinstance(value, RespError) and str(value).startswith("NOSCRIPT")
    assert _parse(b"-NOSCRIPT No matching script.\r\n:1\r\n", pos) == (1, pos + 4)


@pytest.mark.parametrize("data", [b"!5\r\nhello\r\n", b":x\r\n", b"$abc\r\n",
                                  b"$%d\r\n" % (MAX_BULK + 1), b"hello\r\n"])
def test_garbage_is_a_broken_stream(data):
    """Unknown types, non-numeric lengths and absurd sizes raise ValueError (the lane then
    drops the connection) instead of waiting for bytes that never come."""
    with pytest.raises(ValueError):
        _parse(data, 0)


def test_invalid_utf8_is_replaced_not_fatal():
    """A stored value that is not UTF-8 decodes with U+FFFD instead of failing the call."""
    assert _parse(b"$2\r\n\xff\xfe\r\n", 0) == ("\ufffd\ufffd", 8)


def test_lane_target_takes_tcp_and_unix_urls_and_leaves_the_rest_to_redis_py():
    """redis:// and unix:// (with AUTH and SELECT) go to the lane; TLS and socket options stay
    on redis-py, which understands them."""
    assert lane_target("redis://127.0.0.1:6380/2") == {"host": "127.0.0.1", "port": 6380, "db": 2}
    assert lane_target("redis://u:p@h:1/0")["password"] == "p"
    assert lane_target("unix:///run/redis.sock?db=1") == {"path": "/run/redis.sock", "db": 1}
    assert lane_target("rediss://h:6379/0") is None
    assert lane_target("redis://h:6379/0?socket_keepalive=true") is None
