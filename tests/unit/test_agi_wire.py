"""ccengine.agi.wire against the real bytes of Asterisk 22.10.1.

Fixtures: tests/fixtures/agi/ = copies of ../shared/asterisk/transcripts2/agi1_*, agi2_*, agi3_*
and ../shared/asterisk/transcripts/a_answered.agi.txt.
"""
from __future__ import annotations

import pytest

from agi_harness import AGI_FIXTURES, capture_dialogue
from ccengine.agi.wire import (
    HANGUP, AgiDeadChannel, AgiInvalidCommand, AgiProtocolError, AgiReply, AgiUsageError,
    ReplyParser, UnsafeAgiText, Word, digit_string, format_command, identifier,
    parse_environment, quote,
)


def env_of(name: str):
    block = (AGI_FIXTURES / f"{name}.from_asterisk.bin").read_bytes().split(b"\n\n", 1)[0]
    return parse_environment(block.split(b"\n"))


def parse_all(data: bytes) -> list:
    parser = ReplyParser()
    items = []
    for line in data.split(b"\n")[:-1]:
        items.extend(parser.feed(line))
    return items


def replies_after(name: str, command: bytes) -> bytes:
    _, dialogue = capture_dialogue(name)
    return next(received for sent, received in dialogue if sent == command)


# --- environment ---------------------------------------------------------------------------

def test_environment_of_suite_capture():
    """The agi1_suite environment gives the script, caller, channel and call fields."""
    env = env_of("agi1_suite")
    assert env.network_script == "suite"
    assert env.caller_number == "caller"
    assert env.caller_name == "CC Caller"
    assert env.channel == "PJSIP/caller-00000000"
    assert env.uniqueid == "cclab-1795366249.0"
    assert env.language == "en"
    assert (env.dnid, env.extension, env.context) == ("5001", "5001", "hotline")
    assert env.raw["agi_accountcode"] == ""  # `agi_accountcode: ` with an empty value
    assert env.args == ()


def test_environment_utf8_caller_name_with_quotes():
    """agi3_env_utf8_callerid: the raw UTF-8 name keeps PJSIP's backslashes (AGI note 9)."""
    env = env_of("agi3_env_utf8_callerid")
    assert env.caller_name == 'Zhang \\"San\\" 张三'
    assert env.caller_number == "caller"


def test_environment_network_script_query_and_args():
    """agi3_env_args: `route?x=1,arg1,arg two` gives script, query and ordered args."""
    env = env_of("agi3_env_args")
    assert env.network_script == "route"
    assert env.script_query == {"x": "1"}
    assert env.args == ("arg1", "arg two")


def test_environment_of_first_lab_capture():
    """a_answered.agi.txt (first capture set) parses to script `route` on DNID 4000."""
    lines = [row.split(" << ", 1)[1].encode() for row in
             (AGI_FIXTURES / "a_answered.agi.txt").read_text().splitlines()
             if " << agi_" in row]
    env = parse_environment(lines)
    assert (env.network_script, env.dnid, env.caller_number) == ("route", "4000", "caller")


def test_environment_unknown_callerid_and_odd_lines():
    """`unknown` caller ID reads as '', lines without ': ' are skipped, keys are lower-cased."""
    env = parse_environment([b"agi_callerid: unknown", b"agi_calleridname: unknown",
                             b"garbage without separator", b"AGI_DNID: 42", b"agi_x: a: b"])
    assert (env.caller_number, env.caller_name, env.dnid) == ("", "", "42")
    assert env.raw["agi_x"] == "a: b"
    assert "garbage without separator" not in str(dict(env.raw))


def test_environment_hostile_values_stay_one_value_each():
    """Control characters, U+2028, invalid UTF-8 and 10 KB names parse to one value each."""
    name = 'a"b\\c\x0bd\x1ce\u2028f\rg'.encode() + b"\xff\xfe" + b"x" * 10_000
    env = parse_environment([b"agi_calleridname: " + name, b"agi_callerid: 123"])
    assert env.caller_number == "123"
    assert env.caller_name.startswith('a"b\\c\x0bd\x1ce\u2028f\rg\ufffd\ufffd')
    assert len(env.raw) == 2


# --- replies -------------------------------------------------------------------------------

def test_reply_with_data_and_quotes():
    """`200 result=1 (He said "hi there" ok)` keeps the quotes inside the data (agi1_suite)."""
    [reply] = parse_all(replies_after("agi1_suite", b"GET VARIABLE LAB2_QUOTED"))
    assert reply == AgiReply(200, "1", 'He said "hi there" ok', None)
    assert reply.result_int == 1


def test_reply_data_runs_to_last_parenthesis():
    """Data with parentheses and angle brackets is taken up to the last ')' (agi1_suite)."""
    command = b'GET FULL VARIABLE "${CALLERID(all)} on ${CHANNEL}"'
    [reply] = parse_all(replies_after("agi1_suite", command))
    assert reply.data == '"CC Caller" <caller> on PJSIP/caller-00000000'
    assert parse_all(b"200 result=1 (a (b) c) endpos=7\n") == [AgiReply(200, "1", "a (b) c", 7)]


def test_reply_with_endpos_and_dtmf_code():
    """`200 result=50 endpos=17280`: digit '2' as ASCII code, with endpos (agi1_dtmf)."""
    [reply] = parse_all(replies_after("agi1_dtmf", b'STREAM FILE demo-congrats "12"'))
    assert reply == AgiReply(200, "50", None, 17280)


def test_reply_timeout_forms():
    """GET DATA: `result= (timeout)` is empty, `result=1 (timeout)` carries '1' (AGI note 4)."""
    [empty] = parse_all(replies_after("agi1_suite", b"GET DATA beep 3000 4"))
    [one] = parse_all(replies_after("agi1_dtmf", b"GET DATA beep 6000 4"))
    assert (empty.result, empty.data, empty.result_int) == ("", "timeout", None)
    assert (one.result, one.data) == ("1", "timeout")


def test_reply_minus_one_and_missing_file():
    """`200 result=-1 endpos=20160` (hangup) and `-1 endpos=0` (missing file) parse as -1."""
    items = parse_all(replies_after("agi2_hangup_stream", b'STREAM FILE demo-congrats ""'))
    assert items == [AgiReply(200, "-1", None, 20160), HANGUP]
    [missing] = parse_all(replies_after("agi1_suite", b'STREAM FILE lab2-no-such-file ""'))
    assert (missing.result_int, missing.endpos) == (-1, 0)


def test_reply_510_invalid_command():
    """`FOO BAR` -> 510 becomes AgiInvalidCommand (agi1_suite)."""
    [item] = parse_all(replies_after("agi1_suite", b"FOO BAR"))
    assert isinstance(item, AgiInvalidCommand)


def test_reply_520_multiline_with_xml():
    """Multi-line 520 with un-prefixed usage lines holding XML ends as one AgiUsageError."""
    [item] = parse_all(replies_after("agi1_suite", b"STREAM FILE"))
    assert isinstance(item, AgiUsageError)
    assert "<variable>PLAYBACKSTATUS</variable>" in item.usage
    assert item.usage.splitlines()[-1] == "    <value>FAILED</value>"
    assert len(item.usage.splitlines()) == 5


def test_reply_511_dead_channel_and_hangup_lines():
    """HANGUP after `HANGUP`'s own `200 result=1`, then 511 on the dead channel (agi1_suite)."""
    _, dialogue = capture_dialogue("agi1_suite")
    (hangup, after_hangup), (status, after_status) = dialogue[-3:-1]
    assert (hangup, status) == (b"HANGUP", b"CHANNEL STATUS")
    items = parse_all(after_hangup + after_status)
    assert items[:2] == [AgiReply(200, "1"), HANGUP]
    assert isinstance(items[2], AgiDeadChannel)


def test_reply_idle_hangup_notice():
    """The unsolicited HANGUP of agi2_hangup_idle is the HANGUP notice."""
    assert parse_all(replies_after("agi2_hangup_idle", b"ANSWER")) == [AgiReply(200, "0"), HANGUP]


def test_reply_100_trying_is_skipped():
    """`100 result=0 Trying...` is not a final reply; the 200 after it is."""
    assert parse_all(b"100 result=0 Trying...\n200 result=0\n") == [AgiReply(200, "0")]


@pytest.mark.parametrize("line", [b"", b"hello", b"200 result", b"200 nonsense", b"999 x"])
def test_reply_garbage_is_protocol_error(line):
    """A line outside the grammar becomes an AgiProtocolError item."""
    [item] = ReplyParser().feed(line)
    assert isinstance(item, AgiProtocolError)


# --- quoting and command bytes -------------------------------------------------------------

@pytest.mark.parametrize("verb,args,sent", [
    ("SET VARIABLE", (Word("LAB2_QUOTED"), 'He said "hi there" ok'),
     b'SET VARIABLE LAB2_QUOTED "He said \\"hi there\\" ok"\n'),
    ("SET VARIABLE", (Word("LAB2_BACKSLASH"), "C:\\temp\\new file"),
     b'SET VARIABLE LAB2_BACKSLASH "C:\\\\temp\\\\new file"\n'),
    ("VERBOSE", ("lab2 suite: hello from FastAGI", 1),
     b'VERBOSE "lab2 suite: hello from FastAGI" 1\n'),
    ("STREAM FILE", (Word("beep"), ""), b'STREAM FILE beep ""\n'),
    ("GET DATA", (Word("beep"), 3000, 4), b"GET DATA beep 3000 4\n"),
    ("STREAM FILE", (Word("beep"), "0123456789*#"), b'STREAM FILE beep "0123456789*#"\n'),
])
def test_format_command_matches_bytes_that_worked(verb, args, sent):
    """format_command writes the same bytes Asterisk accepted in agi1_suite / agi1_dtmf."""
    assert format_command(verb, *args) == sent
    assert sent in (AGI_FIXTURES / "agi1_suite.to_asterisk.bin").read_bytes() + \
        (AGI_FIXTURES / "agi1_dtmf.to_asterisk.bin").read_bytes()


HOSTILE = ["a\nHANGUP", "a\r\nHANGUP", "a\rb", "a\x0bb", "a\x1cb", "a\u2028b", "a\u2029b",
           "a\x00b", "a\x7fb", "a\x85b", "a\u200eb", "a\ufeffb", "a\udcffb"]


@pytest.mark.parametrize("text", HOSTILE)
def test_quote_refuses_control_and_separator_characters(text):
    """quote() raises UnsafeAgiText (a ValueError) on Cc/Cf/Zl/Zp characters."""
    with pytest.raises(UnsafeAgiText):
        quote(text)
    with pytest.raises(ValueError):
        format_command("SET VARIABLE", Word("X"), text)


def test_quote_escapes_quotes_and_backslashes_only():
    """Quotes and backslashes are escaped; non-ASCII and 10 KB values stay one argument."""
    assert quote('Zhang \\"San\\" 张三') == '"Zhang \\\\\\"San\\\\\\" 张三"'
    line = format_command("SET VARIABLE", Word("CC_NAME"), '\\"' * 5000)
    assert line.count(b"\n") == 1 and line.endswith(b'\\\\\\""\n')


@pytest.mark.parametrize("name", ["", "a b", 'a"b', "a\nb", "a;b", "a$b", "../etc/passwd",
                                  "a/../b", "x" * 81, "a\\b", "-x", "a,b", "a&b"])
def test_identifier_refuses_unsafe_names(name):
    """identifier() accepts only strict names: no spaces, quotes, separators or traversal."""
    with pytest.raises(UnsafeAgiText):
        identifier(name)


def test_identifier_and_digits_accept_real_names():
    """Names used in the captures pass identifier(); DTMF strings pass digit_string()."""
    for name in ["CALLERID(num)", "CHANNEL(language)", "LAB2_QUOTED", "demo-congrats",
                 "custom/hotline.greeting"]:
        assert identifier(name) == Word(name)
    assert digit_string("0123456789*#").text == "0123456789*#"
    with pytest.raises(UnsafeAgiText):
        digit_string("12a")
    with pytest.raises(UnsafeAgiText):
        Word("two words")


def test_format_command_rejects_odd_arguments():
    """Verbs must be upper-case literals; bools and other types are not AGI arguments."""
    with pytest.raises(ValueError):
        format_command("SET VARIABLE\nHANGUP")
    with pytest.raises(TypeError):
        format_command("VERBOSE", "x", True)
    with pytest.raises(TypeError):
        format_command("VERBOSE", b"x")
