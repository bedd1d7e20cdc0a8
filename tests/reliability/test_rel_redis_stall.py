"""Issue 8, case 9: a stalled Redis costs the stalled caller at most the watchdog bound and
costs the other calls nothing; a stall after routing costs the caller nothing.

Runs on the real asyncio reactor (pytest-twisted), not a Clock: a Twisted TCP proxy on
loopback sits in front of the real redis-server and holds every byte while "stalled", so the
redis-py asyncio client sees a server that accepted the connection and went silent. The
scripted Asterisk answers the other calls' commands after a real 10 ms (Asterisk's own reply
latency), so they need the reactor too. The checks are orderings (the other calls finish while
the stalled one is still stalled), plus the configured bound for the stalled call.
"""
from __future__ import annotations

import json

import pytest
import pytest_twisted
import redis
from prometheus_client import CollectorRegistry

from agi_harness import HOLD, ScriptedAsterisk, default_reply
from ccengine.config import parse_config
from ccengine.web import Health, build_root
from rel_support import StallingProxy, call, hotline_factory, press_on_menu, sessions

MAX_SILENCE = 0.3
WATCHDOG_GRACE = 1.0
ASTERISK_LATENCY = 0.01


class QuickRoute:
    """A route that never touches Redis: three commands and the acknowledgement."""

    async def handle(self, channel) -> None:
        await channel.answer()
        await channel.set_variable("CC_QUEUE", "inbound")
        await channel.stream_file("ccengine/zh/welcome")
        await channel.acknowledge()

    async def on_watchdog(self, channel) -> None:
        await channel.acknowledge()


def answering_later(reactor, asterisk_box: list, base=None):
    """Answer each command after ASTERISK_LATENCY real seconds (via the reactor)."""
    def answer(command: bytes):
        reply = (base(command) if base else None) or default_reply(command)
        reactor.callLater(ASTERISK_LATENCY, asterisk_box[0].reply, reply)
        return HOLD
    return answer


@pytest.mark.filterwarnings("ignore:Using readBody with a transport")
@pytest_twisted.ensureDeferred
async def test_case9_redis_stall_hits_only_the_stalled_call_within_the_watchdog_bound(
        redis_server, redis_url):
    """Case 9: while Redis is stalled, the caller waiting on it gets the default route from
    the watchdog within max_silence + watchdog_grace, and meanwhile three other AGI calls and a
    /healthz request over TCP are served completely (the reactor is never blocked)."""
    from twisted.internet import reactor
    from twisted.web.client import Agent, readBody
    from twisted.web.server import Site

    proxy = StallingProxy(reactor, redis_server.host, redis_server.port)
    factory, registry, conn = hotline_factory(
        proxy.url, clock=reactor, redis_timeout=10.0, max_silence=MAX_SILENCE,
        watchdog_grace=WATCHDOG_GRACE, extra_routes={"quick": QuickRoute()})
    health = Health(ami_connected=lambda: True, redis_reachable=lambda: True,
                    fastagi_listening=lambda: True)
    http = reactor.listenTCP(0, Site(build_root(CollectorRegistry(), health)),
                             interface="127.0.0.1")
    watchdog = lambda: registry.get_sample_value(  # noqa: E731
        "ccengine_agi_watchdog_fired_total", {"script": "hotline"}) or 0
    try:
        proxy.hold()
        started = reactor.seconds()
        stalled = ScriptedAsterisk(factory, press_on_menu("1"))
        stalled.dial("hotline", callerid="13700000020", uniqueid="stalled-1")
        assert not stalled.closed

        seen_while_stalled: list[tuple[str, bool, float, float]] = []

        def note(what: str, began: float):
            def record(result):
                seen_while_stalled.append((what, stalled.finished.called, watchdog(),
                                           reactor.seconds() - began))
                return result
            return record

        others = []
        for n in range(3):
            box: list = []
            other = ScriptedAsterisk(factory, answering_later(reactor, box))
            box.append(other)
            other.dial("quick", uniqueid=f"other-{n}")
            others.append(other)
            other.finished.addCallback(note(f"agi-{n}", reactor.seconds()))
        url = f"http://127.0.0.1:{http.getHost().port}/healthz".encode()
        response = await Agent(reactor).request(b"GET", url).addCallback(
            note("healthz", reactor.seconds()))
        body = json.loads(await readBody(response))
        for other in others:
            await other.finished

        # Every other call finished while the stalled caller was still waiting on Redis,
        # before its watchdog fired.
        assert sorted(w for w, *_ in seen_while_stalled) == ["agi-0", "agi-1", "agi-2", "healthz"]
        assert all(not done and fired == 0 for _, done, fired, _ in seen_while_stalled)
        assert all(took < MAX_SILENCE for *_, took in seen_while_stalled)
        assert response.code == 200 and body["status"] == "ok"
        assert all(o.variables["CC_ROUTE_OK"] == "1" for o in others)
        assert sessions(registry, "quick", "ok") == 3

        await stalled.finished
        took = reactor.seconds() - started
        assert took < MAX_SILENCE + WATCHDOG_GRACE
        v = stalled.variables
        assert (v["CC_QUEUE"], v["CC_ACTION"], v["CC_ROUTE_OK"]) == ("inbound", "queue", "1")
        assert watchdog() == 1
        assert sessions(registry, "hotline", "watchdog") == 1
        assert registry.get_sample_value("ccengine_hotline_calls_total",
                                         {"outcome": "default_route"}) == 1
    finally:
        proxy.release()
        await conn.close()
        await proxy.close()
        await http.stopListening()


@pytest_twisted.ensureDeferred
async def test_case9_stalled_record_write_neither_holds_the_caller_nor_is_lost(redis_server,
                                                                                 redis_url):
    """Case 9: Redis goes silent after the caller was recognised and routed, as the call
    record is written. The caller is not held: the session ends right after CC_ROUTE_OK with
    the caller's choice (complaint queue, category 10), no watchdog. The write stays pending;
    the engine's shutdown waits for it, and once Redis answers again the record is stored."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater
    proxy = StallingProxy(reactor, redis_server.host, redis_server.port)
    all_day = {"open": "00:00", "close": "23:59:59.999999"}     # the real clock: any day, hour
    config = parse_config({"queues": {name: dict(all_day) for name in
                                      ("inbound", "complaint", "outbound", "supervisor")}}, "test")
    factory, registry, conn = hotline_factory(
        proxy.url, clock=reactor, config=config, redis_timeout=10.0, max_silence=MAX_SILENCE,
        watchdog_grace=WATCHDOG_GRACE)
    writes = factory.routes["hotline"].writes
    menu = press_on_menu("3")

    def answer(command: bytes):
        if command.startswith(b"SET VARIABLE CC_ROUTE_OK"):
            proxy.hold()            # the route is acknowledged; Redis goes silent
        return menu(command)
    try:
        asterisk = await call(factory, answer, callerid="13700000021", uniqueid="stalled-rec-1")
        assert asterisk.closed and proxy.holding
        v = asterisk.variables
        assert (v["CC_QUEUE"], v["CC_CATEGORY"], v["CC_ROUTE_OK"]) == ("complaint", "10", "1")
        assert sessions(registry, "hotline", "ok") == 1
        assert not registry.get_sample_value("ccengine_agi_watchdog_fired_total",
                                             {"script": "hotline"})
        assert len(writes) == 1
        stopping = writes.stopService()
        await deferLater(reactor, MAX_SILENCE, lambda: None)
        assert not stopping.called            # shutdown waits for the record ...
        proxy.release()
        await stopping                        # ... which is stored once Redis answers
        assert len(writes) == 0
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        assert r.hgetall("cc:call:stalled-rec-1")["queue"] == "complaint"
        r.close()
    finally:
        proxy.release()
        await conn.close()
        await proxy.close()
