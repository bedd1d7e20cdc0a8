"""FastAGIFactory: routing by agi_network_script, outcomes, watchdog and session bounds.

Environment and reply formats from tests/fixtures/agi (copies of
../shared/asterisk/transcripts2 agi1_suite / agi3_env_args, Asterisk 22.10.1)."""
from __future__ import annotations

from twisted.internet.defer import Deferred

from agi_harness import AGI_FIXTURES, HOLD, ScriptedAsterisk, agi_factory, environment_block


class Route:
    """A route whose handle/on_watchdog run the given coroutine functions."""

    def __init__(self, handle=None, on_watchdog=None):
        self._handle = handle
        self._on_watchdog = on_watchdog
        self.channels = []
        self.cancelled = False

    async def handle(self, channel):
        self.channels.append(channel)
        if self._handle is not None:
            try:
                await self._handle(channel)
            except BaseException as exc:
                self.cancelled = type(exc).__name__ == "CancelledError"
                raise

    async def on_watchdog(self, channel):
        if self._on_watchdog is not None:
            await self._on_watchdog(channel)


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0


async def set_ok(channel):
    await channel.set_variable("CC_QUEUE", "inbound")
    await channel.acknowledge()


# The watchdog's route in these tests sets the same decision.
default_route = set_ok


def test_routes_by_network_script_and_ignores_query():
    """`hotline?x=1` (cf. agi3_env_args `route?x=1`) reaches the hotline route, not the other."""
    hotline, agent = Route(set_ok), Route(set_ok)
    factory, clock, registry = agi_factory({"hotline": hotline, "agent": agent})
    asterisk = ScriptedAsterisk(factory).dial("hotline?x=1", args=("arg1", "arg two"))
    assert len(hotline.channels) == 1 and agent.channels == []
    assert hotline.channels[0].env.args == ("arg1", "arg two")
    assert asterisk.variables == {"CC_QUEUE": "inbound", "CC_ROUTE_OK": "1"}
    assert asterisk.closed and asterisk.lost
    assert sample(registry, "ccengine_agi_sessions_total", script="hotline", outcome="ok") == 1
    assert factory.active_sessions == 0 and clock.getDelayedCalls() == []


def test_unknown_script_closes_without_commands():
    """An unknown script writes nothing and closes, so the dialplan fallback runs."""
    factory, clock, registry = agi_factory({"hotline": Route(set_ok)})
    asterisk = ScriptedAsterisk(factory).dial("no-such-route")
    assert asterisk.written == b"" and asterisk.closed
    assert sample(registry, "ccengine_agi_sessions_total",
                  script="unknown", outcome="unknown_script") == 1
    assert clock.getDelayedCalls() == []


def test_active_sessions_gauge_counts_running_sessions():
    """ccengine_agi_sessions_active is computed from the running sessions at scrape time."""
    factory, _, registry = agi_factory({"hotline": Route(set_ok)})
    asterisk = ScriptedAsterisk(factory, answer=lambda c: HOLD).dial("hotline")
    assert sample(registry, "ccengine_agi_sessions_active") == 1
    asterisk.reply(b"200 result=1\n")
    asterisk.reply(b"200 result=1\n")
    assert sample(registry, "ccengine_agi_sessions_active") == 0


def test_crash_is_logged_counted_and_closes():
    """A route exception closes the session with outcome=error and errors{kind=handler}."""
    async def crash(channel):
        raise RuntimeError("bug")
    factory, _, registry = agi_factory({"hotline": Route(crash)})
    asterisk = ScriptedAsterisk(factory).dial("hotline")
    assert asterisk.closed
    assert sample(registry, "ccengine_agi_sessions_total", script="hotline", outcome="error") == 1
    assert sample(registry, "ccengine_agi_errors_total", kind="handler") == 1


def test_command_timeout_closes_session():
    """A command left unanswered past command_timeout ends the session (error, kind=timeout)."""
    factory, clock, registry = agi_factory({"hotline": Route(set_ok)}, command_timeout=10.0,
                                           max_silence=3.0)
    asterisk = ScriptedAsterisk(factory, answer=lambda c: HOLD).dial("hotline")
    clock.advance(9.9)
    assert not asterisk.closed
    clock.advance(0.2)
    assert asterisk.closed and asterisk.lost
    assert sample(registry, "ccengine_agi_sessions_total", script="hotline", outcome="error") == 1
    assert sample(registry, "ccengine_agi_errors_total", kind="timeout") == 1
    assert clock.getDelayedCalls() == []


def test_watchdog_runs_on_watchdog_when_handler_stalls():
    """A handler awaiting a never-firing Deferred (Redis stall) is cancelled after max_silence;
    on_watchdog's commands are written, then the connection closes (outcome=watchdog)."""
    stall = Deferred()

    async def stalls(channel):
        await channel.answer()
        await stall

    route = Route(stalls, default_route)
    factory, clock, registry = agi_factory({"hotline": route}, max_silence=3.0)
    asterisk = ScriptedAsterisk(factory).dial("hotline")
    assert asterisk.commands == [b"ANSWER"]
    clock.advance(2.9)
    assert not asterisk.closed
    clock.advance(0.1)
    assert route.cancelled
    assert asterisk.commands == [b"ANSWER", b'SET VARIABLE CC_QUEUE "inbound"',
                                 b'SET VARIABLE CC_ROUTE_OK "1"']
    assert asterisk.closed
    assert sample(registry, "ccengine_agi_watchdog_fired_total", script="hotline") == 1
    assert sample(registry, "ccengine_agi_sessions_total", script="hotline",
                  outcome="watchdog") == 1
    assert clock.getDelayedCalls() == []


def test_watchdog_not_fired_while_a_command_is_in_flight():
    """A long prompt in flight is not silence: only command_timeout/media_timeout bound it."""
    route = Route(lambda ch: ch.stream_file("long-prompt"), default_route)
    factory, clock, registry = agi_factory({"hotline": route}, max_silence=3.0)
    asterisk = ScriptedAsterisk(factory, answer=lambda c: HOLD).dial("hotline")
    clock.advance(60)
    assert not asterisk.closed
    assert sample(registry, "ccengine_agi_watchdog_fired_total", script="hotline") == 0
    asterisk.reply(b"200 result=0 endpos=160000\n")
    assert asterisk.closed
    assert sample(registry, "ccengine_agi_sessions_total", script="hotline", outcome="ok") == 1


def test_watchdog_counts_silence_from_the_last_reply_after_a_long_command():
    """The watchdog is checked lazily (nothing per command): a prompt in flight for 5 s, then a
    stall, fires it exactly max_silence after the prompt's reply, not max_silence after the
    session start nor at the first check while the prompt was playing."""
    stall = Deferred()

    async def plays_then_stalls(channel):
        await channel.stream_file("long-prompt")
        await stall

    route = Route(plays_then_stalls, default_route)
    factory, clock, registry = agi_factory({"hotline": route}, max_silence=3.0)
    asterisk = ScriptedAsterisk(factory, answer=lambda c: HOLD).dial("hotline")
    clock.advance(5.0)
    asterisk.reply(b"200 result=0 endpos=40000\n")
    clock.advance(2.9)
    assert not route.cancelled
    assert sample(registry, "ccengine_agi_watchdog_fired_total", script="hotline") == 0
    clock.advance(0.1)
    assert route.cancelled
    assert sample(registry, "ccengine_agi_watchdog_fired_total", script="hotline") == 1


def test_watchdog_grace_bounds_on_watchdog():
    """An on_watchdog that stalls too is cut off after watchdog_grace; the session closes."""
    async def stalls(channel):
        await Deferred()
    factory, clock, registry = agi_factory({"hotline": Route(stalls, stalls)},
                                           max_silence=3.0, watchdog_grace=1.0)
    asterisk = ScriptedAsterisk(factory).dial("hotline")
    clock.advance(3.0)
    assert not asterisk.closed
    clock.advance(1.0)
    assert asterisk.closed
    assert sample(registry, "ccengine_agi_errors_total", kind="watchdog_handler") == 1
    assert clock.getDelayedCalls() == []


def test_max_session_caps_a_busy_session():
    """A session still running at max_session is cancelled and closed (outcome=max_session)."""
    async def loops(channel):
        while True:
            await channel.wait_for_digit(5000)
    factory, clock, registry = agi_factory({"hotline": Route(loops)}, max_session=30.0)
    asterisk = ScriptedAsterisk(factory, answer=lambda c: HOLD).dial("hotline")
    for _ in range(6):
        clock.advance(5.0)
        asterisk.reply(b"200 result=0\n")
    assert asterisk.closed
    assert sample(registry, "ccengine_agi_sessions_total", script="hotline",
                  outcome="max_session") == 1
    assert clock.getDelayedCalls() == []


def test_caller_hangup_while_idle_then_media_is_hangup_outcome():
    """Unsolicited HANGUP (agi2_hangup_idle) then a prompt: CallerHungUp, outcome=hangup."""
    gate = Deferred()

    async def waits(channel):
        await channel.answer()
        await gate
        await channel.stream_file("menu")

    factory, _, registry = agi_factory({"hotline": Route(waits)})
    asterisk = ScriptedAsterisk(factory).dial("hotline")
    asterisk.hangup()
    gate.callback(None)
    assert asterisk.commands == [b"ANSWER"]
    assert sample(registry, "ccengine_agi_sessions_total", script="hotline", outcome="hangup") == 1


def test_connection_drop_mid_command_is_lost():
    """Asterisk going away mid-command ends the session with outcome=lost."""
    factory, clock, registry = agi_factory({"hotline": Route(set_ok)})
    asterisk = ScriptedAsterisk(factory, answer=lambda c: HOLD).dial("hotline")
    asterisk.drop()
    assert sample(registry, "ccengine_agi_sessions_total", script="hotline", outcome="lost") == 1
    assert clock.getDelayedCalls() == []


def test_connection_drop_while_handler_thinks_is_lost_not_error():
    """Asterisk going away while the handler awaits Redis cancels it quietly (outcome=lost)."""
    route = Route(lambda ch: Deferred())
    factory, clock, registry = agi_factory({"hotline": route})
    asterisk = ScriptedAsterisk(factory).dial("hotline")
    asterisk.drop()
    assert route.cancelled
    assert sample(registry, "ccengine_agi_sessions_total", script="hotline", outcome="lost") == 1
    assert sample(registry, "ccengine_agi_errors_total", kind="handler") == 0
    assert clock.getDelayedCalls() == []


def test_health_check_connect_and_close_costs_nothing():
    """A TCP connect-and-close without environment leaves no timer, session or metric."""
    factory, clock, registry = agi_factory({"hotline": Route(set_ok)})
    asterisk = ScriptedAsterisk(factory).connect()
    asterisk.drop()
    assert clock.getDelayedCalls() == [] and factory.active_sessions == 0
    assert [m for m in registry.collect() if m.name == "ccengine_agi_sessions"][0].samples == []


def test_silent_connection_dropped_after_env_timeout():
    """A client that sends nothing is dropped after env_timeout (errors{kind=env_timeout})."""
    factory, clock, registry = agi_factory({"hotline": Route(set_ok)}, env_timeout=10.0)
    asterisk = ScriptedAsterisk(factory).connect()
    clock.advance(10.0)
    assert asterisk.closed and asterisk.lost
    assert sample(registry, "ccengine_agi_errors_total", kind="env_timeout") == 1
    assert clock.getDelayedCalls() == []


def test_ten_kilobyte_caller_name_is_refused_as_too_long():
    """A 10 KB caller-ID line exceeds the 8 KiB line bound: no session, connection closed."""
    route = Route(set_ok)
    factory, clock, registry = agi_factory({"hotline": route})
    asterisk = ScriptedAsterisk(factory).dial("hotline", calleridname=b"A" * 10_240)
    assert route.channels == [] and asterisk.written == b"" and asterisk.closed
    assert sample(registry, "ccengine_agi_errors_total", kind="line_too_long") == 1


def test_environment_block_matches_capture_format():
    """The harness environment with the suite's script equals agi1_suite's real block."""
    real = (AGI_FIXTURES / "agi1_suite.from_asterisk.bin").read_bytes()
    assert real.startswith(environment_block("suite"))


class _AcknowledgesThenStalls:
    """Sets its decision with CC_ROUTE_OK=1, then waits on something that never answers."""

    def __init__(self):
        self.rescued = False

    async def handle(self, channel):
        await channel.set_variable("CC_CHOICE", "callback")
        await channel.acknowledge()
        await Deferred()                            # e.g. a Redis write that stalls

    async def on_watchdog(self, channel):
        self.rescued = True
        await channel.set_variable("CC_CHOICE", "default")


def test_watchdog_keeps_a_decision_the_route_already_acknowledged():
    """Once a route set CC_ROUTE_OK=1 the watchdog closes the session without on_watchdog, so
    the dialplan keeps the route's decision instead of the default (any route, not only the
    hotline)."""
    route = _AcknowledgesThenStalls()
    factory, clock, registry = agi_factory({"hotline": route})
    asterisk = ScriptedAsterisk(factory).dial("hotline")
    asterisk.advance(factory.settings.max_silence + 0.01)
    assert asterisk.closed and not route.rescued
    assert asterisk.variables == {"CC_CHOICE": "callback", "CC_ROUTE_OK": "1"}
    assert registry.get_sample_value("ccengine_agi_watchdog_fired_total", {"script": "hotline"}) == 1
