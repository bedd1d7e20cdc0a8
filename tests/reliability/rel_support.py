"""Helpers shared by the reliability suite (issue 8): the hotline on a scripted Asterisk, a
stallable TCP proxy in front of a real redis-server, and small Deferred helpers.

Importable from tests/reliability/ (pytest puts a test file's directory on sys.path).
AGI reply formats come from tests/agi_harness.py (copies of ../shared/asterisk/transcripts2).
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from twisted.internet.protocol import ClientFactory, Factory, Protocol

from agi_harness import ScriptedAsterisk, digit_code_reply
from ccengine.calls import feature as calls_feature
from engine_context import engine_context, records_for

MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def hotline_factory(redis_url: str, *, clock=None, now: float = MONDAY_10AM, config=None,
                    redis_timeout: float = 2.0, extra_routes=None, **agi_settings):
    """A FastAGIFactory serving the real hotline route (calls feature) on real Redis.

    `clock`: a task.Clock (default, advanced to `now`) or the real reactor. Returns
    (factory, registry, conn)."""
    factory, ctx = engine_context(redis_url, now=now, config=config, clock=clock,
                                  redis_timeout=redis_timeout, **agi_settings)
    factory.routes.update(calls_feature.build(ctx, records=records_for(ctx)).routes)
    factory.routes.update(extra_routes or {})
    return factory, ctx.registry, ctx.redis


def press_on_menu(digit: str):
    """The caller presses `digit` during the menu prompt (STREAM FILE interrupted, agi1_dtmf)."""
    def answer(command: bytes):
        if command.startswith(b"STREAM FILE") and b"menu" in command:
            return digit_code_reply(digit, endpos=8000)
        return None
    return answer


async def call(factory, answer=None, script="hotline", **env) -> ScriptedAsterisk:
    asterisk = ScriptedAsterisk(factory, answer)
    asterisk.dial(script, **env)
    await asterisk.finished
    return asterisk


def sessions(registry, script: str, outcome: str) -> float:
    return registry.get_sample_value("ccengine_agi_sessions_total",
                                     {"script": script, "outcome": outcome}) or 0.0


# --- a TCP proxy that can hold bytes (a Redis stall without touching redis-server) -----------

class _Upstream(Protocol):
    def __init__(self, downstream: "_ProxySide") -> None:
        self.downstream = downstream

    def connectionMade(self) -> None:
        self.downstream.upstream_ready(self)

    def dataReceived(self, data: bytes) -> None:
        self.downstream.from_upstream(data)

    def connectionLost(self, reason) -> None:
        self.downstream.transport.loseConnection()


class _ProxySide(Protocol):
    def __init__(self, proxy: "StallingProxy") -> None:
        self.proxy = proxy
        self.upstream: _Upstream | None = None
        self._to_upstream: list[bytes] = []
        self._to_client: list[bytes] = []

    def connectionMade(self) -> None:
        self.proxy.sides.append(self)
        factory = ClientFactory.forProtocol(lambda: _Upstream(self))
        factory.noisy = False
        self.proxy.reactor.connectTCP(self.proxy.target_host, self.proxy.target_port, factory)

    def upstream_ready(self, upstream: _Upstream) -> None:
        self.upstream = upstream
        self.flush()

    def dataReceived(self, data: bytes) -> None:
        self._to_upstream.append(data)
        self.flush()

    def from_upstream(self, data: bytes) -> None:
        self._to_client.append(data)
        self.flush()

    def flush(self) -> None:
        if self.proxy.holding:
            return
        if self.upstream is not None:
            for chunk in self._to_upstream:
                self.upstream.transport.write(chunk)
            self._to_upstream.clear()
        for chunk in self._to_client:
            self.transport.write(chunk)
        self._to_client.clear()

    def connectionLost(self, reason) -> None:
        if self in self.proxy.sides:
            self.proxy.sides.remove(self)
        if self.upstream is not None:
            self.upstream.transport.loseConnection()


class StallingProxy:
    """Listens on 127.0.0.1 and relays to host:port; `hold()` keeps every byte in both
    directions until `release()`: the client sees a Redis that accepted the connection and
    then went silent, exactly what a stalled (not dead) server looks like."""

    def __init__(self, reactor, target_host: str, target_port: int) -> None:
        self.reactor = reactor
        self.target_host = target_host
        self.target_port = target_port
        self.holding = False
        self.sides: list[_ProxySide] = []
        factory = Factory.forProtocol(lambda: _ProxySide(self))
        factory.noisy = False
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port.getHost().port}/0"

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        self.holding = False
        for side in list(self.sides):
            side.flush()

    async def close(self) -> None:
        self.holding = False
        for side in list(self.sides):
            side.transport.loseConnection()
        await self.port.stopListening()
