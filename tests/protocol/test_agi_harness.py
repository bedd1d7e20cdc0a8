"""The scripted Asterisk in tests/agi_harness.py speaks what the captures recorded
(tests/fixtures/agi = copies of ../shared/asterisk/transcripts2 agi1_*, agi2_*, agi3_*)."""
from __future__ import annotations

import pytest

from agi_harness import (
    AGI_FIXTURES, capture_dialogue, default_reply, digit_code_reply, get_data_reply, split_args,
)

CAPTURES = ["agi1_suite", "agi1_dtmf", "agi2_hangup_stream", "agi2_hangup_exec_wait",
            "agi2_hangup_idle", "agi3_env_args", "agi3_env_utf8_callerid"]


def all_received() -> bytes:
    return b"".join((AGI_FIXTURES / f"{n}.from_asterisk.bin").read_bytes() for n in CAPTURES)


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_dialogue_reassembles_the_byte_captures(name):
    """capture_dialogue(.agi.txt) gives back exactly the .from_asterisk/.to_asterisk bytes."""
    env, dialogue = capture_dialogue(name)
    assert env + b"".join(r for _, r in dialogue) == \
        (AGI_FIXTURES / f"{name}.from_asterisk.bin").read_bytes()
    assert b"".join(c + b"\n" for c, _ in dialogue) == \
        (AGI_FIXTURES / f"{name}.to_asterisk.bin").read_bytes()


@pytest.mark.parametrize("command", [
    b"ANSWER", b'SET VARIABLE X "1"', b"GET VARIABLE X", b'STREAM FILE beep ""',
    b"GET DATA beep 3000 4", b"WAIT FOR DIGIT 2000", b'EXEC Playback "beep"', b"HANGUP",
    b'VERBOSE "x" 1', b"CHANNEL STATUS", b"FOO BAR",
])
def test_default_replies_are_recorded_replies(command):
    """Every default reply line of the harness occurs in the captures as Asterisk sent it."""
    received = all_received()
    for line in default_reply(command).split(b"\n")[:-1]:
        assert b"\n" + line + b"\n" in received


def test_reply_builders_match_dtmf_capture():
    """digit_code_reply / get_data_reply produce agi1_dtmf's and agi1_suite's lines."""
    received = all_received()
    for line in (digit_code_reply("2", endpos=17280), digit_code_reply("3"),
                 get_data_reply("1"), get_data_reply("")):
        assert b"\n" + line in received


def test_split_args_follows_agi_note_7():
    """Quoted, escaped and unescaped backslash arguments split as Asterisk read them."""
    assert split_args(b'SET VARIABLE LAB2_QUOTED "He said \\"hi there\\" ok"')[3] == \
        'He said "hi there" ok'
    assert split_args(b'SET VARIABLE LAB2_BACKSLASH "C:\\\\temp\\\\new file"')[3] == \
        "C:\\temp\\new file"
    assert split_args(b"SET VARIABLE LAB2_BACKSLASH_UNESCAPED C:\\temp")[3] == "C:temp"
    assert split_args(b'STREAM FILE beep ""') == ["STREAM", "FILE", "beep", ""]
