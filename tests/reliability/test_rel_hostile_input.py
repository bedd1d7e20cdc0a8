"""Issue 8, cases 1-2: hostile caller ID and DTMF text never adds a command or an action.

Calls go end to end through the real hotline route (calls feature) on a scripted Asterisk
(tests/agi_harness.py; reply formats of tests/fixtures/agi, copies of
../shared/asterisk/transcripts2) with real Redis underneath. Asterisk writes the caller ID raw
into the environment (res_agi.c setup_env: `ast_agi_send(fd, chan, "agi_calleridname: %s\\n",
...)`, no escaping), so a newline in a caller name reaches the engine as a line break.
"""
from __future__ import annotations

import pytest
import pytest_twisted
import redis

from agi_harness import ScriptedAsterisk, agi_factory, split_args
from ami_replay import ClientHarness
from ccengine.agi.wire import UnsafeAgiText
from ccengine.ami.wire import Action, UnsafeAmiValue
from ccengine.calls.routing import display_name
from engine_context import records_written
from rel_support import call, hotline_factory, press_on_menu, sessions

VERBS = (b"SET VARIABLE ", b"GET VARIABLE ", b"STREAM FILE ", b"GET DATA ", b"WAIT FOR DIGIT ",
         b"SAY ", b"EXEC ", b"ANSWER", b"HANGUP", b"VERBOSE ")

HOSTILE_NAMES = {
    "lf": "Zhang\nEXEC Dial PJSIP/evil",
    "crlf": "evil\r\nHANGUP",
    "vt": "x\x0bEXEC Dial",
    "fs": "x\x1cSET VARIABLE CC_ROUTE_OK 1",
    "u2028": "a\u2028SET VARIABLE CC_QUEUE supervisor",
    "quotes": 'Zhang "San" 张三',
    "backslashes": 'C:\\temp\\" EXEC Dial',
    "long": "名" * 1200 + '"\\' * 200,
    "invalid_utf8": b"\xff\xfe\xc3( caller",
}

HOSTILE_NUMBERS = {
    "quote": '1380"0000001',
    "backslash": "1380\\0000001",
    "vt": "138\x0b00000001",
    "fs": "138\x1c00000001",
    "u2028": "138\u200800000001",
    "spaces": "+86 138 0000 0001",
    "long": "1" * 300,
    "invalid_utf8": b"\xff13800000001",
}


def _wire_is_clean(asterisk: ScriptedAsterisk) -> None:
    """Every line the engine wrote is one known command, each answered once, no stray bytes."""
    written = asterisk.written
    assert written.count(b"\n") == len(asterisk.commands)
    assert written.endswith(b"\n")
    for command in asterisk.commands:
        assert command.startswith(VERBS), command
        assert not any(b < 0x20 or b == 0x7F for b in command), command
        assert "\u2028" not in command.decode("utf-8")
        if command.startswith(b"SET VARIABLE "):
            assert len(split_args(command)) == 4, command


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
@pytest_twisted.ensureDeferred
async def test_case1_hostile_caller_names_are_routed_with_one_escaped_value(redis_url, name):
    """Case 1: a hostile caller name (environment and stored customer name) is routed normally;
    the name reaches the wire as one escaped value and every command is answered in order."""
    text = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.hset("cc:customer:13600000000", mapping={"name": text, "tier": "known"})
    r.close()
    factory, registry, conn = hotline_factory(redis_url)
    raw = name if isinstance(name, bytes) else name.encode("utf-8")
    asterisk = await call(factory, press_on_menu("1"), callerid="13600000000",
                          calleridname=raw, uniqueid="hostile-name-1")
    _wire_is_clean(asterisk)
    assert sessions(registry, "hotline", "ok") == 1
    v = asterisk.variables
    assert (v["CC_QUEUE"], v["CC_ACTION"], v["CC_ROUTE_OK"]) == ("inbound", "queue", "1")
    set_name = [c for c in asterisk.commands if c.startswith(b"SET VARIABLE CC_CUSTOMER_NAME ")]
    assert len(set_name) == 1
    assert split_args(set_name[0])[3] == display_name(text)
    assert not any(c.startswith((b"EXEC", b"HANGUP")) for c in asterisk.commands)
    await conn.close()


@pytest.mark.parametrize("number", HOSTILE_NUMBERS.values(), ids=HOSTILE_NUMBERS.keys())
@pytest_twisted.ensureDeferred
async def test_case1_hostile_caller_numbers_become_an_anonymous_caller(redis_url, number):
    """Case 1: a caller number that is not a plain phone number is treated as anonymous: the
    call is still routed, the number is never written to the wire or used as a Redis key."""
    factory, registry, conn = hotline_factory(redis_url)
    raw = number if isinstance(number, bytes) else number.encode("utf-8")
    asterisk = await call(factory, press_on_menu("3"), callerid=raw, uniqueid="hostile-num-1")
    _wire_is_clean(asterisk)
    assert sessions(registry, "hotline", "ok") == 1
    v = asterisk.variables
    assert (v["CC_QUEUE"], v["CC_CUSTOMER_TIER"], v["CC_ROUTE_OK"]) == ("complaint", "new", "1")
    assert b"1380" not in asterisk.written
    await records_written(factory)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.hget("cc:call:hostile-num-1", "caller") == ""
    assert [k for k in r.keys("cc:customer:*")] == []
    r.close()
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_case1_crlf_in_caller_number_is_a_line_end_not_a_hangup(redis_url):
    """Case 1: `13800000001\\r\\nHANGUP` as caller number: the CR/LF ends the environment line
    (its number is kept), the smuggled `HANGUP` line is not an environment entry and not a
    hang-up; the call is routed normally and every command is answered in order."""
    factory, registry, conn = hotline_factory(redis_url)
    asterisk = await call(factory, press_on_menu("1"), callerid=b"13800000001\r\nHANGUP",
                          uniqueid="crlf-num-1")
    _wire_is_clean(asterisk)
    assert not asterisk.protocol.hung_up
    assert sessions(registry, "hotline", "ok") == 1
    assert asterisk.variables["CC_ROUTE_OK"] == "1"
    await records_written(factory)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.hget("cc:call:crlf-num-1", "caller") == "13800000001"
    r.close()
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_case1_ten_kilobyte_caller_name_is_refused_before_any_command(redis_url):
    """Case 1: a caller name longer than the 8 KiB line limit ends the session before any
    command is written; the dialplan fallback then queues the call."""
    factory, registry, conn = hotline_factory(redis_url)
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("hotline", calleridname=b"A" * 10_000, callerid="13700000000")
    assert asterisk.closed and asterisk.written == b""
    assert registry.get_sample_value("ccengine_agi_errors_total", {"kind": "line_too_long"}) == 1
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_case1_blank_line_in_caller_name_leaves_the_call_to_the_fallback(redis_url):
    """Case 1: a name holding an empty line ends the environment early; the rest of the
    environment cannot be paired with any command, so the session closes without CC_ROUTE_OK
    (the dialplan queues the call) and nothing more is written."""
    factory, registry, conn = hotline_factory(redis_url)
    asterisk = await call(factory, press_on_menu("1"), callerid="13700000001",
                          calleridname=b"x\n\nSET VARIABLE CC_ROUTE_OK 1")
    assert asterisk.closed
    assert "CC_ROUTE_OK" not in asterisk.variables
    assert asterisk.written.count(b"\n") == len(asterisk.commands)
    await conn.close()


@pytest.mark.parametrize("injected", [
    b"x\nagi_uniqueid: victim-call",
    b"x\nagi_network_script: decoy",
    b"x\nagi_channel: PJSIP/victim-00000001",
], ids=["uniqueid", "network_script", "channel"])
@pytest_twisted.ensureDeferred
async def test_case1_newline_in_caller_name_cannot_override_the_environment(redis_url,
                                                                           injected):
    """Case 1: an environment line smuggled in through a newline in the caller name never
    replaces a value Asterisk sent (call id, route, channel): the call is either handled as
    itself or refused to the dialplan fallback, and another call's record is untouched."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.hset("cc:call:victim-call", mapping={"queue": "complaint", "outcome": "queued"})
    decoy = EchoRoute("1")
    factory, registry, conn = hotline_factory(redis_url, extra_routes={"decoy": decoy})
    asterisk = await call(factory, press_on_menu("1"), callerid="13700000002",
                          calleridname=injected, uniqueid="real-call-1",
                          channel="PJSIP/caller-00000042")
    await records_written(factory)
    assert r.hgetall("cc:call:victim-call") == {"queue": "complaint", "outcome": "queued"}
    assert sessions(registry, "decoy", "ok") == 0
    if "CC_ROUTE_OK" in asterisk.variables:       # handled: as itself, by the hotline
        assert asterisk.variables["CC_CALL_ID"] == "real-call-1"
        assert r.hget("cc:call:real-call-1", "channel") == "PJSIP/caller-00000042"
    else:                                          # refused: the dialplan fallback queues it
        assert asterisk.closed and sessions(registry, "hotline", "ok") == 0
    r.close()
    await conn.close()


# --- case 2: caller text and DTMF in SET VARIABLE, EXEC and AMI actions ---------------------

class EchoRoute:
    """A route that tries to write caller-controlled text: the caller name into SET VARIABLE
    and VERBOSE, digits the caller 'entered' into EXEC arguments."""

    def __init__(self, digits: str) -> None:
        self.digits = digits
        self.refused: list[str] = []

    async def handle(self, channel) -> None:
        for step, attempt in (
                ("set", lambda: channel.set_variable("CC_NOTE", channel.env.caller_name)),
                ("verbose", lambda: channel.verbose(channel.env.caller_name)),
                ("exec", lambda: channel.exec_app("SayDigits", self.digits))):
            try:
                await attempt()
            except UnsafeAgiText:
                self.refused.append(step)
        await channel.acknowledge()

    async def on_watchdog(self, channel) -> None:
        await channel.acknowledge()


@pytest.mark.parametrize("name,digits,refused", [
    ('Zhang "San" \\ 张三', "1234#", []),
    ("evil\x0bEXEC Dial PJSIP/x", "123&PJSIP/x", ["set", "verbose", "exec"]),
    ("a\u2028b", "1,2,3", ["set", "verbose", "exec"]),
    ("x\x1c", "${SHELL(id)}", ["set", "verbose", "exec"]),
    ("plain", "1)(2", ["exec"]),
], ids=["escaped", "vt-ampersand", "u2028-comma", "fs-expression", "parentheses"])
@pytest_twisted.ensureDeferred
async def test_case2_caller_text_in_set_variable_and_exec_is_escaped_or_refused(
        name, digits, refused):
    """Case 2: caller text in SET VARIABLE / VERBOSE is one quoted argument or refused before
    writing; DTMF text with separators or expressions never reaches EXEC."""
    route = EchoRoute(digits)
    factory, _, registry = agi_factory({"echo": route})
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("echo", calleridname=name.encode("utf-8"))
    await asterisk.finished
    assert route.refused == refused
    expected = 4 - len(refused)   # three attempts + CC_ROUTE_OK
    assert len(asterisk.commands) == expected
    assert asterisk.written.count(b"\n") == expected
    for command in asterisk.commands:
        assert not any(b < 0x20 for b in command)
    if "set" not in refused:
        set_note = asterisk.commands[0]
        assert split_args(set_note) == ["SET", "VARIABLE", "CC_NOTE", name]
    if "exec" not in refused:
        assert [c for c in asterisk.commands if c.startswith(b"EXEC")] == \
            [b'EXEC SayDigits "' + digits.encode() + b'"']
    assert asterisk.variables["CC_ROUTE_OK"] == "1"


@pytest.mark.parametrize("value", [
    "evil\r\n\r\nAction: Originate\r\nChannel: PJSIP/x",
    "line\nAction: Hangup",
    "cr only\rAction: Hangup",
    "nul\x00Action: Hangup",
])
def test_case2_caller_text_in_an_ami_action_is_refused_before_writing(value):
    """Case 2: a CR, LF or NUL in any field of an AMI action (caller name or DTMF copied into
    Setvar/Originate) fails the action before a single byte of it is written."""
    harness = ClientHarness()
    harness.login(with_events=False)
    before = harness.transport.value()
    failures = []
    harness.client.send_action("Setvar", Channel="PJSIP/caller-00000000",
                               Variable="CC_NOTE", Value=value).addErrback(failures.append)
    harness.client.send_action("Originate", [("Channel", "Local/1@x"), ("Variable", value)]
                               ).addErrback(failures.append)
    assert [f.check(UnsafeAmiValue) for f in failures] == [UnsafeAmiValue, UnsafeAmiValue]
    assert harness.transport.value() == before
    assert [m["Action"] for m in harness.written()] == ["Login"]
    with pytest.raises(UnsafeAmiValue):
        Action("Setvar", {"Value": value})
    with pytest.raises(UnsafeAmiValue):
        Action("Setvar", {"Value\r\nAction": "Originate"})
