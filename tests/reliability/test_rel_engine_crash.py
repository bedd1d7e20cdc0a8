"""Issue 8, cases 7-8 (engine side): a session that ends before the route is decided never
acknowledges it, so the dialplan's fallback (`Queue(inbound)` unless CC_ROUTE_OK is 1) queues
the call.

The dialplan half is structural (tests/unit/test_dialplan_safety.py) and captured on Asterisk
22.10.1 (tests/fixtures/e_baseline_and_agi_fallback.asterisk.log); the procedures on a real
Asterisk are docs/operations.md A and B. Here: the hotline route (real Redis) on a scripted
Asterisk whose connection is cut, or whose engine code fails, in the middle of the IVR.
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred

from agi_harness import HOLD, ScriptedAsterisk
from rel_support import hotline_factory, sessions


def hold_at(prompt: bytes) -> tuple:
    """Asterisk leaves the first command mentioning `prompt` unanswered (the caller listens);
    the Deferred fires when that command has been written."""
    reached: Deferred = Deferred()

    def answer(command: bytes):
        if prompt in command:
            if not reached.called:
                # resume the test on the next reactor turn, not inside the harness's pump
                from twisted.internet import reactor
                reactor.callLater(0, reached.callback, command)
            return HOLD
        return None
    return answer, reached


@pytest.mark.parametrize("where", [b"welcome", b"menu", b"CHANNEL(language)"])
@pytest_twisted.ensureDeferred
async def test_case8_connection_dropped_mid_ivr_never_sets_cc_route_ok(redis_url, where):
    """Case 8: the engine's connection dies (crash, kill -9, restart) at any point of the IVR
    before the decision: CC_ROUTE_OK was never set, no command follows, the session ends
    `lost`, so the dialplan sends the caller to its fallback queue."""
    factory, registry, conn = hotline_factory(redis_url)
    answer, reached = hold_at(where)
    asterisk = ScriptedAsterisk(factory, answer)
    asterisk.dial("hotline", callerid="13700000010")
    await reached
    written = len(asterisk.commands)
    asterisk.drop()
    await asterisk.finished
    assert "CC_ROUTE_OK" not in asterisk.variables
    assert "CC_QUEUE" not in asterisk.variables
    assert len(asterisk.commands) == written
    assert sessions(registry, "hotline", "lost") == 1
    assert factory.active_sessions == 0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_case8_engine_code_failing_mid_ivr_leaves_the_call_to_the_fallback(redis_url):
    """Case 8: a bug that raises in the middle of the IVR closes the session without
    CC_ROUTE_OK (outcome `error`, counted), so the dialplan still queues the call."""
    factory, registry, conn = hotline_factory(redis_url)
    hotline = factory.routes["hotline"]

    async def broken_ask(*args, **kwargs):
        raise RuntimeError("prompt catalogue bug")
    hotline.prompter.ask = broken_ask
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("hotline", callerid="13700000011")
    await asterisk.finished
    assert asterisk.closed
    assert "CC_ROUTE_OK" not in asterisk.variables
    assert sessions(registry, "hotline", "error") == 1
    assert registry.get_sample_value("ccengine_agi_errors_total", {"kind": "handler"}) == 1
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_case7_unknown_route_is_closed_at_once_for_the_fallback(redis_url):
    """Case 7 (engine side): a request the engine cannot serve (unknown script, e.g. an engine
    deployed without that feature) is closed without a command, like an engine that is down."""
    factory, registry, conn = hotline_factory(redis_url)
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("no-such-route", callerid="13700000012")
    assert asterisk.closed and asterisk.written == b""
    assert sessions(registry, "unknown", "unknown_script") == 1
    await conn.close()

