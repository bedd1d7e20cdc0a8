"""AgiChannel commands driven through the factory against replayed Asterisk 22.10.1 captures
(tests/fixtures/agi = copies of ../shared/asterisk/transcripts2/agi1_*, agi2_*)."""
from __future__ import annotations

import pytest

from agi_harness import ScriptedAsterisk, agi_factory, capture_dialogue, replay
from ccengine.agi.channel import (
    HANGUP_GRACE, AgiAppNotFound, CallerHungUp, PlaybackFailed,
)
from ccengine.agi.wire import UnsafeAgiText


class Recorder:
    """A route running `script(channel, seen)`; `seen` collects results and exceptions."""

    def __init__(self, script):
        self.script = script
        self.seen = []
        self.watchdog_runs = 0

    async def handle(self, channel):
        await self.script(channel, self.seen)

    async def on_watchdog(self, channel):
        self.watchdog_runs += 1


def dial_replay(script, capture, pick=None, **env):
    """Run `script` as route "test" against the capture's replies (commands checked in order)."""
    _, dialogue = capture_dialogue(capture)
    if pick is not None:
        dialogue = [dialogue[i] for i in pick]
    route = Recorder(script)
    factory, clock, registry = agi_factory({"test": route})
    asterisk = ScriptedAsterisk(factory, answer=replay(dialogue))
    asterisk.dial("test", **env)
    return route, asterisk, clock, registry


def sessions(registry, outcome):
    return registry.get_sample_value("ccengine_agi_sessions_total",
                                     {"script": "test", "outcome": outcome}) or 0


async def suite_script(channel, seen):
    await channel.answer()
    seen.append(await channel.get_variable("CALLERID(num)"))
    await channel.set_variable("LAB2_QUOTED", 'He said "hi there" ok')
    seen.append(await channel.get_variable("LAB2_QUOTED"))
    await channel.set_variable("LAB2_BACKSLASH", "C:\\temp\\new file")
    seen.append(await channel.get_variable("LAB2_BACKSLASH"))
    seen.append(await channel.get_variable("LAB2_NEVER_SET"))
    await channel.verbose("lab2 suite: hello from FastAGI")
    seen.append(await channel.stream_file("beep"))
    seen.append(await channel.get_data("beep", 3000, 4))
    seen.append(await channel.wait_for_digit(2000))
    seen.append(await channel.exec_app("Playback", "beep"))
    try:
        await channel.exec_app("NoSuchApplication", "foo")
    except AgiAppNotFound as exc:
        seen.append(exc)


# agi1_suite entries the channel covers, in order (CHANNEL STATUS, GET FULL VARIABLE, DATABASE
# and the deliberate syntax errors are left out).
SUITE_PICK = [0, 2, 5, 6, 8, 9, 12, 13, 19, 20, 21, 22, 23]


def test_suite_commands_and_results():
    """The channel writes agi1_suite's commands and decodes each of its real replies."""
    route, asterisk, clock, registry = dial_replay(suite_script, "agi1_suite", SUITE_PICK)
    assert route.seen[:-1] == ["caller", 'He said "hi there" ok', "C:\\temp\\new file", None,
                               "", "", "", 0]
    assert isinstance(route.seen[-1], AgiAppNotFound)
    assert asterisk.commands[2] == b'SET VARIABLE LAB2_QUOTED "He said \\"hi there\\" ok"'
    assert asterisk.variables["LAB2_BACKSLASH"] == "C:\\temp\\new file"
    assert asterisk.closed and sessions(registry, "ok") == 1
    assert clock.getDelayedCalls() == []


async def dtmf_script(channel, seen):
    await channel.answer()
    seen.append(await channel.stream_file("demo-congrats", "12"))
    seen.append(await channel.get_data("beep", 6000, 4))
    seen.append(await channel.wait_for_digit(10000))
    seen.append(await channel.wait_for_digit(1500))
    seen.append(await channel.stream_file("beep", "0123456789*#"))


def test_dtmf_results():
    """agi1_dtmf byte for byte: 50 -> '2', `result=1 (timeout)` -> '1', 51 -> '3', 0 -> ''."""
    _, dialogue = capture_dialogue("agi1_dtmf")
    route = Recorder(dtmf_script)
    factory, _, registry = agi_factory({"test": route})
    asterisk = ScriptedAsterisk(factory, answer=replay(dialogue, exact=True))
    asterisk.dial("test")
    assert route.seen == ["2", "1", "3", "", ""]
    assert sessions(registry, "ok") == 1


async def hangup_stream_script(channel, seen):
    await channel.answer()
    try:
        await channel.stream_file("demo-congrats")
    except CallerHungUp:
        seen.append("hung up")
        await channel.set_variable("CC_LAST", "hung up")   # variables still work (AGI note 8)
        raise


def test_caller_hangup_mid_prompt_ends_handler_with_hangup():
    """agi2_hangup_stream: `-1 endpos=20160` then HANGUP -> CallerHungUp, outcome=hangup."""
    _, dialogue = capture_dialogue("agi2_hangup_stream")
    route = Recorder(hangup_stream_script)
    factory, clock, registry = agi_factory({"test": route})
    recorded = replay(dialogue[:2])  # ANSWER, STREAM FILE -> `-1 endpos=20160` + HANGUP

    def answer(command):
        return None if command.startswith(b"SET VARIABLE") else recorded(command)

    asterisk = ScriptedAsterisk(factory, answer=answer)
    asterisk.dial("test")
    assert route.seen == ["hung up"]
    assert asterisk.variables == {"CC_LAST": "hung up"}
    assert sessions(registry, "hangup") == 1 and asterisk.closed
    assert clock.getDelayedCalls() == []


async def exec_wait_script(channel, seen):
    await channel.answer()
    await channel.exec_app("Wait", "10")


def test_caller_hangup_during_exec_raises_caller_hung_up():
    """agi2_hangup_exec_wait: `EXEC Wait 10` -> -1 then HANGUP ends the session as hangup."""
    route, asterisk, _, registry = dial_replay(exec_wait_script, "agi2_hangup_exec_wait", [0, 1])
    assert asterisk.commands == [b"ANSWER", b'EXEC Wait "10"']
    assert sessions(registry, "hangup") == 1


async def missing_file_script(channel, seen):
    try:
        await channel.stream_file("lab2-no-such-file")
    except PlaybackFailed:
        seen.append("failed")
    seen.append(await channel.get_variable("CALLERID(num)"))


def test_missing_file_is_playback_failure_after_grace():
    """agi1_suite `-1 endpos=0` with no HANGUP within the grace -> PlaybackFailed, call goes on."""
    route, asterisk, clock, registry = dial_replay(missing_file_script, "agi1_suite", [28, 2])
    assert route.seen == []
    clock.advance(HANGUP_GRACE)
    assert route.seen == ["failed", "caller"]
    assert sessions(registry, "ok") == 1


async def after_hangup_script(channel, seen):
    await channel.answer()
    seen.append(await channel.get_variable("CALLERID(num)"))
    await channel.verbose("lab2: command after hangup")
    for media in (channel.answer(), channel.stream_file("beep"), channel.wait_for_digit(1000),
                  channel.say_digits("12"), channel.say_number(7), channel.get_data("x", 1, 1),
                  channel.exec_app("Playback", "beep")):
        try:
            await media
        except CallerHungUp:
            seen.append("refused")
    await channel.hangup()


def test_media_commands_refused_after_hangup_without_writing():
    """After HANGUP (agi2_hangup_idle), media commands raise CallerHungUp before anything is
    written; GET VARIABLE and VERBOSE still work (agi2_hangup_stream, AGI note 8)."""
    _, idle = capture_dialogue("agi2_hangup_idle")
    _, stream = capture_dialogue("agi2_hangup_stream")
    route = Recorder(after_hangup_script)
    factory, clock, registry = agi_factory({"test": route})
    asterisk = ScriptedAsterisk(factory, answer=replay([idle[0], stream[3], stream[6]]))
    asterisk.dial("test")
    assert route.seen == ["caller"] + ["refused"] * 7
    assert asterisk.commands == [b"ANSWER", b"GET VARIABLE CALLERID(num)",
                                 b'VERBOSE "lab2: command after hangup" 1']
    assert sessions(registry, "ok") == 1


async def dead_channel_script(channel, seen):
    await channel.stream_file("beep")


def test_511_raises_caller_hung_up():
    """A 511 reply (agi2_hangup_stream `STREAM FILE beep ""`) raises CallerHungUp."""
    route, asterisk, _, registry = dial_replay(dead_channel_script, "agi2_hangup_stream", [4])
    assert sessions(registry, "hangup") == 1


def test_hangup_command_is_idempotent():
    """hangup() sends HANGUP (agi1_suite: `200 result=1`, HANGUP); a second one meets 511
    (agi2_hangup_stream's last command) and returns quietly; once hung up nothing is written."""
    async def script(channel, seen):
        await channel.hangup()
        await channel.hangup()
        seen.append(channel.hung_up)
        await channel.hangup()
    _, suite = capture_dialogue("agi1_suite")
    _, stream = capture_dialogue("agi2_hangup_stream")
    route = Recorder(script)
    factory, _, registry = agi_factory({"test": route})
    asterisk = ScriptedAsterisk(factory, answer=replay([suite[32], stream[11]], exact=True))
    asterisk.dial("test")
    assert route.seen == [True] and asterisk.commands == [b"HANGUP", b"HANGUP"]
    assert sessions(registry, "ok") == 1


async def hostile_script(channel, seen):
    name = channel.env.caller_name
    await channel.set_variable("CC_CALLER_NAME", name)
    seen.append("written")


HOSTILE_NAMES = [b'a"b', b"a\\b\\", b'Zhang \\"San\\" \xe5\xbc\xa0\xe4\xb8\x89',
                 b"x\xff\xfey", b"A" * 6000]
UNSAFE_NAMES = [b"a\x0bHANGUP", b"a\x1cb", "a\u2028b".encode(), "a\u2029b".encode(),
                b"a\x00b", b"a\x7fb"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_caller_names_stay_one_quoted_argument(name):
    """Quotes, backslashes, UTF-8, invalid UTF-8, long names: one command, same value back."""
    route = Recorder(hostile_script)
    factory, _, registry = agi_factory({"test": route})
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("test", calleridname=name)
    assert route.seen == ["written"]
    assert asterisk.written.count(b"\n") == 1 and len(asterisk.commands) == 1
    assert asterisk.variables["CC_CALLER_NAME"] == name.decode("utf-8", "replace")


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_caller_names_are_refused_before_writing(name):
    """Control characters and U+2028/9 in a caller name raise before any byte is written."""
    route = Recorder(hostile_script)
    factory, _, registry = agi_factory({"test": route})
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("test", calleridname=name)
    assert route.seen == [] and asterisk.written == b""
    assert sessions(registry, "error") == 1
    assert registry.get_sample_value("ccengine_agi_errors_total", {"kind": "handler"}) == 1


def test_newline_in_caller_name_cannot_reach_the_wire():
    """A caller ID with \\n or \\r\\n is split by the framing, never written as a command."""
    route = Recorder(hostile_script)
    factory, _, _ = agi_factory({"test": route})
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("test", calleridname=b"evil\r\nHANGUP\nEXEC System rm")
    assert asterisk.commands == [b'SET VARIABLE CC_CALLER_NAME "evil"']


@pytest.mark.parametrize("call", [
    lambda ch: ch.exec_app("Dial", "PJSIP/1001&PJSIP/1002"),
    lambda ch: ch.exec_app("Set", "X=${SHELL(id)}"),
    lambda ch: ch.exec_app("Playback", "a,b"),
    lambda ch: ch.exec_app("Playback", 'a"b'),
    lambda ch: ch.exec_app("Playback beep", "x"),
    lambda ch: ch.say_digits("12\n"),
    lambda ch: ch.stream_file("beep", "1a"),
    lambda ch: ch.stream_file("beep extra"),
    lambda ch: ch.set_variable("A B", "x"),
    lambda ch: ch.set_language("en\nHANGUP"),
    lambda ch: ch.verbose("two\nlines"),
])
def test_unsafe_arguments_raise_before_writing(call):
    """DTMF, app arguments, names and text that could smuggle syntax raise UnsafeAgiText."""
    async def script(channel, seen):
        try:
            await call(channel)
        except UnsafeAgiText:
            seen.append("refused")
    route = Recorder(script)
    factory, _, _ = agi_factory({"test": route})
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("test")
    assert route.seen == ["refused"] and asterisk.written == b""


def test_exec_app_and_language_bytes():
    """exec_app joins arguments with ',' into one quoted argument; set_language sets
    CHANNEL(language); say_number decodes the escape digit (35 -> '#')."""
    async def script(channel, seen):
        seen.append(await channel.exec_app("Queue", "inbound", "t", "", "", "300"))
        await channel.set_language("de")
        seen.append(await channel.say_number(42, "#"))
    route = Recorder(script)
    factory, _, _ = agi_factory({"test": route})
    asterisk = ScriptedAsterisk(
        factory, answer=lambda c: b"200 result=35\n" if c.startswith(b"SAY") else None)
    asterisk.dial("test")
    assert asterisk.commands == [b'EXEC Queue "inbound,t,,,300"',
                                 b'SET VARIABLE CHANNEL(language) "de"', b'SAY NUMBER 42 "#"']
    assert route.seen == [0, "#"]


def test_acknowledge_sets_cc_route_ok_last_and_only_through_acknowledge():
    """acknowledge() writes `SET VARIABLE CC_ROUTE_OK "1"` and marks the channel acknowledged
    (the watchdog keeps the decision from then on); set_variable refuses CC_ROUTE_OK, so no
    route can set it without that mark."""
    async def script(channel, seen):
        await channel.set_variable("CC_QUEUE", "inbound")
        try:
            await channel.set_variable("CC_ROUTE_OK", "1")
        except ValueError:
            seen.append("refused")
        seen.append(channel.acknowledged)
        await channel.acknowledge()
        seen.append(channel.acknowledged)
    route = Recorder(script)
    factory, _, _ = agi_factory({"test": route})
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("test")
    assert route.seen == ["refused", False, True]
    assert asterisk.commands == [b'SET VARIABLE CC_QUEUE "inbound"',
                                 b'SET VARIABLE CC_ROUTE_OK "1"']
