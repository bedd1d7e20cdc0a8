"""The Redis connection: redis-py's asyncio client on Twisted's asyncio reactor.

Why asyncio and not threads: redis.asyncio runs on the same event loop as the reactor
(AsyncioSelectorReactor), so a round trip costs no thread hop and no pool; a slow Redis only
delays the coroutine waiting for it, never the reactor. Every operation has a timeout and
every failure becomes StoreUnavailable, so call logic has one error to handle.

The Lua scripts on a call's critical path (`RedisConnection.script`) take a lighter road when
the engine passes its reactor: one pipelined Twisted connection (store/resp.py), because
redis-py's per-command client code was a third of the hotline's CPU (bench/README.md).
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, TypeVar
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import NoScriptError, RedisError
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ccengine.store.resp import LaneUnavailable, RespError, ScriptLane, lane_target

T = TypeVar("T")


class StoreUnavailable(Exception):
    """Redis did not answer in time or answered with an error."""


def as_deferred(coro: Awaitable[T]) -> Deferred:
    """Run an asyncio coroutine on the reactor's loop and return a Deferred for its result."""
    return Deferred.fromFuture(asyncio.ensure_future(coro))


class LuaScript:
    """A script run by its SHA1 (EVALSHA); EVAL when Redis does not have it (after a restart
    or SCRIPT FLUSH), which caches it again."""

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class StoreMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.latency = Histogram(
            "ccengine_redis_latency_seconds", "Time of one Redis operation (round trip or pipeline)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry)
        self.errors = Counter("ccengine_redis_errors_total",
                              "Redis operations that failed or timed out", registry=registry)
        self.up = Gauge("ccengine_redis_up", "1 when the last Redis operation succeeded",
                        registry=registry)


class RedisConnection:
    """One client (with its own connection pool) shared by every store class."""

    def __init__(self, url: str, timeout: float = 2.0, metrics: StoreMetrics | None = None,
                 reactor: Any = None):
        self.url = url
        self.timeout = timeout
        self.metrics = metrics
        # No socket_timeout: `run` bounds every operation with one asyncio.timeout, and
        # redis-py's own per-read and per-write timeouts (an extra Task for asyncio.wait_for on
        # every write, a timer on every read) cost CPU on every command for nothing
        # (measured in bench/README.md). A cancelled read or write makes redis-py drop that
        # connection, so a late reply is never paired with the next command.
        self.client = aioredis.Redis.from_url(url, decode_responses=True,
                                              socket_connect_timeout=timeout,
                                              socket_timeout=None)
        # With a running Twisted reactor, scripts take the lane (store/resp.py); without one
        # (the CLIs run plain asyncio), or for a URL the lane does not speak, redis-py.
        target = lane_target(url) if reactor is not None else None
        self._lane = ScriptLane(reactor, target, timeout) if target is not None else None

    async def run(self, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run `op(client)` with the timeout; failures become StoreUnavailable."""
        started = time.perf_counter()
        try:
            # asyncio.timeout (3.11) rather than wait_for, which makes an extra task per call.
            async with asyncio.timeout(self.timeout):
                result = await op(self.client)
        except (TimeoutError, RedisError, OSError) as exc:
            raise self._unavailable(type(exc).__name__, exc) from exc
        return self._succeeded(result, started)

    def call(self, op: Callable[[aioredis.Redis], Awaitable[Any]]) -> Deferred:
        """`run` as a Deferred, for Twisted-side code."""
        return as_deferred(self.run(op))

    def script(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Deferred:
        """Run a Lua script; fires with its decoded reply, fails with StoreUnavailable."""
        if self._lane is None:
            async def op(r):
                try:
                    return await r.evalsha(script.sha, len(keys), *keys, *args)
                except NoScriptError:
                    return await r.eval(script.source, len(keys), *keys, *args)
            return self.call(op)
        started = time.perf_counter()
        d = self._lane.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        d.addErrback(self._noscript, script, keys, args)
        d.addCallbacks(self._succeeded, self._lane_failed, (started,))
        return d

    def _noscript(self, failure: Failure, script: LuaScript, keys: Sequence[str],
                  args: Sequence[Any]) -> Any:
        if failure.check(RespError) and str(failure.value).startswith("NOSCRIPT") \
                and self._lane is not None:
            return self._lane.execute("EVAL", script.source, len(keys), *keys, *args)
        return failure

    def _lane_failed(self, failure: Failure) -> Any:
        exc = failure.check(RespError, LaneUnavailable)
        if exc is None:
            return failure  # a cancellation or a bug: not Redis's fault
        raise self._unavailable(exc.__name__, failure.value) from failure.value

    # --- metrics of every operation, whichever road it took --------------------------------
    def _succeeded(self, result: T, started: float) -> T:
        if self.metrics:
            self.metrics.latency.observe(time.perf_counter() - started)
            self.metrics.up.set(1)
        return result

    def _unavailable(self, kind: str, exc: BaseException) -> StoreUnavailable:
        if self.metrics:
            self.metrics.errors.inc()
            self.metrics.up.set(0)
        return StoreUnavailable(f"redis: {kind}: {exc}")

    def ping(self) -> Deferred:
        return self.call(lambda r: r.ping())

    async def aclose(self) -> None:
        if self._lane is not None:
            self._lane.close()
        await self.client.aclose()

    def close(self) -> Deferred:
        return as_deferred(self.aclose())
