"""Issue 8, case 12: with Redis unreachable, callers still reach a queue, callback offers are
withdrawn aloud, and /healthz and /metrics say Redis is down.

Uses the application's own wiring (ccengine.app.build_service, every feature present) with a
Redis URL on which nothing listens, a task.Clock at a Monday 10:00 (queues open) instead of the
reactor, and a scripted Asterisk (tests/agi_harness.py) on the wired FastAGI factory.
"""
from __future__ import annotations

import json

import pytest_twisted
from twisted.application import internet
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from agi_harness import ScriptedAsterisk
from ccengine import app
from ccengine.config import load_config
from ccengine.store.base import StoreUnavailable
from ccengine.store.embedded import free_port
from rel_support import MONDAY_10AM, press_on_menu, sessions


def wired_engine(monkeypatch):
    monkeypatch.delenv("CCENGINE_AMI_SECRET", raising=False)
    clock = Clock()
    clock.advance(MONDAY_10AM)
    top, ctx = app.build_service(load_config(None), clock,
                                 f"redis://127.0.0.1:{free_port()}/0")
    servers = {s.args[0]: s.args[1] for s in top if isinstance(s, internet.TCPServer)}
    config = ctx.config
    return ctx, servers[config.fastagi.port], servers[config.http.port]


def get(site, path: bytes) -> tuple[int, bytes]:
    request = DummyRequest([path])
    body = site.getResourceFor(request).render(request)
    return request.responseCode or 200, body


@pytest_twisted.ensureDeferred
async def test_case12_callers_reach_a_queue_and_health_shows_redis_down(monkeypatch):
    """Case 12: with Redis unreachable a known caller is treated as new and routed to the queue
    of the key pressed (CC_ROUTE_OK=1); /healthz answers 503 with redis_reachable false and
    /metrics shows ccengine_redis_up 0."""
    ctx, factory, site = wired_engine(monkeypatch)
    asterisk = ScriptedAsterisk(factory, press_on_menu("3"))
    asterisk.dial("hotline", callerid="13800000001", uniqueid="down-1")
    await asterisk.finished
    v = asterisk.variables
    assert (v["CC_QUEUE"], v["CC_CUSTOMER_TIER"], v["CC_ACTION"], v["CC_ROUTE_OK"]) == \
        ("complaint", "new", "queue", "1")
    assert sessions(ctx.registry, "hotline", "ok") == 1

    try:
        await ctx.redis.ping()
    except StoreUnavailable:
        pass
    else:
        raise AssertionError("ping succeeded on an unreachable Redis")
    code, body = get(site, b"healthz")
    report = json.loads(body)
    assert code == 503 and report["status"] == "degraded"
    assert report["redis_reachable"] is False
    code, body = get(site, b"metrics")
    assert b"\nccengine_redis_up 0.0\n" in body
    assert ctx.registry.get_sample_value("ccengine_redis_errors_total") >= 2
    await ctx.redis.close()


@pytest_twisted.ensureDeferred
async def test_case12_callback_offer_is_withdrawn_aloud_and_the_caller_stays_queued(
        monkeypatch):
    """Case 12: a caller who presses 2 for a callback while Redis is unreachable hears the
    'callback unavailable' message and goes back into the queue (CC_ANNOUNCE_ACTION=stay,
    CC_ROUTE_OK=1); nothing is silently dropped."""
    ctx, factory, _ = wired_engine(monkeypatch)
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("queue-announce", args=("inbound", "key"), callerid="13800000001",
                  uniqueid="down-2")
    await asterisk.finished
    played = [c for c in asterisk.commands if c.startswith(b"STREAM FILE")]
    assert any(b"callback_unavailable" in c for c in played)
    v = asterisk.variables
    assert (v["CC_ANNOUNCE_ACTION"], v["CC_ROUTE_OK"]) == ("stay", "1")
    assert sessions(ctx.registry, "queue-announce", "ok") == 1
    await ctx.redis.close()
