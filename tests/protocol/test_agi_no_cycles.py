"""A finished AGI session is freed by reference counting, not left to the garbage collector.

Each call used to leave 16 objects in reference cycles (the protocol's deadline and hang-up
listeners, the session's timer and handler Deferred hold bound methods of their owners). The
collector found them, but its collections under load stopped the reactor for tens of ms
(bench/README.md). Here the collector is off while a session runs and ends; every engine
object of the session must be gone as soon as the test drops its own references.

Replies as in tests/fixtures/agi (copies of ../shared/asterisk/transcripts2 agi1_suite);
HANGUP while idle as agi2_hangup_idle.
"""
from __future__ import annotations

import gc
import weakref
from contextlib import contextmanager

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from agi_harness import ScriptedAsterisk, agi_factory
from test_hotline import build, call, press_on_menu


class Route:
    def __init__(self, handle):
        self._handle = handle
        self.seen: list[weakref.ref] = []

    async def handle(self, channel):
        self.seen.append(weakref.ref(channel))
        await self._handle(channel)

    async def on_watchdog(self, channel):
        pass


async def set_ok(channel):
    await channel.answer()
    await channel.set_variable("CC_QUEUE", "inbound")
    await channel.acknowledge()


def _waits_for_gate():
    gate = Deferred()

    async def waits(channel):
        await channel.answer()
        await gate
        await channel.stream_file("menu")   # the caller is gone: CallerHungUp

    return waits, gate


@contextmanager
def collector_off():
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def detach(asterisk: ScriptedAsterisk) -> None:
    """Break the test harness's own cycle (its transport calls back into it): not the engine's."""
    asterisk.transport._on_write = asterisk.transport._on_close = None


def still_alive(refs: list[weakref.ref]) -> list[str]:
    return [type(ref()).__name__ for ref in refs if ref() is not None]


def watch_sessions(factory) -> list[weakref.ref]:
    """Weak references to the factory's sessions, appended as each one finishes."""
    sessions: list[weakref.ref] = []
    finished = factory.session_finished

    def session_finished(session, outcome):
        sessions.append(weakref.ref(session))
        finished(session, outcome)

    factory.session_finished = session_finished
    return sessions


def run_session(outcome: str) -> list[weakref.ref]:
    """One session ending with `outcome`; weak references to its protocol, session, channel."""
    if outcome == "ok":
        route = Route(set_ok)
    elif outcome == "hangup":
        handle, gate = _waits_for_gate()
        route = Route(handle)
    else:
        raise AssertionError(outcome)
    factory, clock, registry = agi_factory({"hotline": route}, max_silence=3.0)
    sessions = watch_sessions(factory)
    asterisk = ScriptedAsterisk(factory).dial("hotline")
    if outcome == "hangup":
        asterisk.hangup()
        gate.callback(None)
    assert registry.get_sample_value("ccengine_agi_sessions_total",
                                     {"script": "hotline", "outcome": outcome}) == 1
    assert clock.getDelayedCalls() == []
    detach(asterisk)
    return [weakref.ref(asterisk.protocol), *sessions, *route.seen]


@pytest.mark.parametrize("outcome", ["ok", "hangup"])
def test_finished_session_is_freed_without_the_garbage_collector(outcome):
    """The usual endings: the route's decision, or the caller hanging up in the IVR.

    Not checked: a lost connection or the watchdog. Those log the handler's Failure, whose
    traceback keeps the call's frames (in cycles, and in the log buffer tests run with); they
    are rare, and the collector frees them as before."""
    with collector_off():
        refs = run_session(outcome)
        assert len(refs) == 3
        assert still_alive(refs) == [], "left for the garbage collector"


def test_the_check_sees_an_object_kept_alive_by_a_cycle():
    """The check above can fail: a session whose protocol is in a cycle stays alive."""
    with collector_off():
        factory, _, _ = agi_factory({"hotline": Route(set_ok)})
        asterisk = ScriptedAsterisk(factory).dial("hotline")
        asterisk.protocol.cycle = asterisk.protocol
        refs = [weakref.ref(asterisk.protocol)]
        detach(asterisk)
        del asterisk
        assert still_alive(refs) == ["FastAGIProtocol"]
        gc.collect()
        assert still_alive(refs) == []


@pytest_twisted.ensureDeferred
async def test_hotline_call_is_freed_without_the_garbage_collector(redis_url):
    """The real hotline route (recognition and the call record in real Redis, prompts, menu,
    metrics), a known caller pressing 1: nothing of the call waits for the collector."""
    redis.Redis.from_url(redis_url).hset("cc:customer:13800000001",
                                         mapping={"name": "Li Lei", "tier": "known"})
    factory, _, _ = build(redis_url)
    sessions = watch_sessions(factory)
    # The first call connects the Redis lane and loads the scripts.
    await call(factory, press_on_menu("1"), callerid="13800000002", uniqueid="cclab-1795364563.6")
    with collector_off():
        asterisk = await call(factory, press_on_menu("1"), callerid="13800000001",
                              uniqueid="cclab-1795364563.7")
        # `finished` fires inside the engine's close (the harness delivers it synchronously);
        # the session's last frames unwind on this turn.
        await deferLater(reactor, 0, lambda: None)
        assert asterisk.variables["CC_ROUTE_OK"] == "1"
        assert asterisk.variables["CC_CUSTOMER_NAME"] == "Li Lei"
        refs = [weakref.ref(asterisk.protocol), sessions[-1]]
        detach(asterisk)
        del asterisk
        assert still_alive(refs) == [], "left for the garbage collector"
