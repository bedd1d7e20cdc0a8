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
import functools
import os
import hashlib
import time
from typing import Any, TypeVar
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.driver_info import DriverInfo
from redis.exceptions import NoScriptError, RedisError
from redis.utils import get_lib_version
from twisted.internet.defer import Deferred
from twisted.logger import Logger
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


log = Logger()

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
        self.master_changes = Counter(
            "ccengine_redis_master_changes",
            "Times the Redis master found through Sentinel was another server (a failover)",
            registry=registry)


async def hgetall_many(r: Any, names: list[str]) -> list[dict[str, str]]:
    """HGETALL of every key in `names`, in order, in one pipelined round trip (a resync of
    2,000 agents made 2,000 sequential HGETALLs, longer than redis.timeout under load)."""
    if not names:
        return []
    async with r.pipeline(transaction=False) as p:
        for name in names:
            p.hgetall(name)
        return await p.execute()


@functools.cache
def driver_info() -> DriverInfo:
    """What redis-py sends in CLIENT SETINFO on each new connection (lib-name redis-py, its
    version), built once: left to redis-py, every new pool connection builds its own and reads
    the version with an uncached importlib.metadata.version("redis") (0.5-2 ms of CPU each,
    bench/ami_real.py profiles)."""
    return DriverInfo(name="redis-py", lib_version=get_lib_version())


# Connections to Redis at most (redis-py's pool; the Lua scripts take the lane, one socket).
POOL_SIZE = 100

class RedisConnection:
    """One client (with its own connection pool) shared by every store class."""

    def __init__(self, url: str, timeout: float = 2.0, metrics: StoreMetrics | None = None,
                 reactor: Any = None, client: Any = None, min_replicas: int = 0,
                 replica_timeout_ms: int = 500, tls: dict[str, Any] | None = None):
        self.url = url
        self.timeout = timeout
        self.metrics = metrics
        # host:port of the master as Sentinel last named it (ping); None without Sentinel.
        self.master: str | None = None
        # Writes that must not be lost (callbacks, tickets, logins, outbound claims) wait for
        # this many replicas (WAIT on the write's own connection) before they count as done.
        self.min_replicas = min_replicas
        self.replica_timeout_ms = replica_timeout_ms
        if client is not None:              # Sentinel (from_config): no lane, redis-py follows
            self.client = client            # the master through the sentinels
            self._lane = None
            return
        # No socket_timeout: `run` bounds every operation with one asyncio.timeout, and
        # redis-py's own per-read and per-write timeouts (an extra Task for asyncio.wait_for on
        # every write, a timer on every read) cost CPU on every command for nothing
        # (measured in bench/README.md). A cancelled read or write makes redis-py drop that
        # connection, so a late reply is never paired with the next command.
        # A blocking pool: past POOL_SIZE commands at once (a burst of AMI events, each with a
        # Redis write) a command waits for a free connection, within `run`'s timeout, where
        # redis-py's default pool fails it with MaxConnectionsError (seen with 200 queue
        # events in one read: console figures and agent states lost).
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=None, decode_responses=True,
            socket_connect_timeout=timeout, socket_timeout=None, driver_info=driver_info(),
            **(tls or {}))
        self.client = aioredis.Redis(connection_pool=pool)
        # With a running Twisted reactor, scripts take the lane (store/resp.py); without one
        # (the CLIs run plain asyncio), or for a URL the lane does not speak, redis-py.
        target = lane_target(url) if reactor is not None else None
        self._lane = ScriptLane(reactor, target, timeout) if target is not None else None

    @classmethod
    def from_config(cls, redis: Any, url: str, metrics: StoreMetrics | None = None,
                    reactor: Any = None) -> RedisConnection:
        """The engine's and the CLIs' connection: through Redis Sentinel when
        redis.sentinels is set (redis-py's Sentinel finds the master and finds it again after
        a failover), else to `url`."""
        password = os.environ.get(redis.password_env) if redis.password_env else None
        # TLS: redis-py's SSLConnection checks the server's certificate and host name against
        # tls_ca_file (or the system's CAs); the script lane speaks plain TCP only, so with
        # TLS the scripts go through redis-py too (lane_target says no to rediss://).
        tls = {"ssl_ca_certs": redis.tls_ca_file} if redis.tls_ca_file else {}
        if redis.sentinels:
            from redis.asyncio.sentinel import Sentinel
            if redis.tls:
                tls = {"ssl": True, **tls}
            hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in redis.sentinels]
            sentinel = Sentinel(hosts, socket_connect_timeout=redis.timeout,
                                sentinel_kwargs={"socket_connect_timeout": redis.timeout,
                                                 **tls})
            client = sentinel.master_for(redis.service, decode_responses=True,
                                         socket_connect_timeout=redis.timeout,
                                         password=password, driver_info=driver_info(), **tls)
            return cls(f"sentinel://{redis.service}", redis.timeout, metrics, None, client,
                       redis.min_replicas_ack, redis.replica_ack_timeout_ms)
        if password and "@" not in url:
            url = url.replace("://", f"://:{password}@", 1)
        return cls(url, redis.timeout, metrics, reactor, None, redis.min_replicas_ack,
                   redis.replica_ack_timeout_ms,
                   tls if url.startswith("rediss://") else {})

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

    def call(self, op: Callable[[aioredis.Redis], Awaitable[Any]],
             durable: bool = False) -> Deferred:
        """`run` as a Deferred, for Twisted-side code. `durable`: as for `script`, the op runs
        on one connection and WAIT confirms its writes reached redis.min_replicas_ack replicas."""
        if durable and self.min_replicas > 0:
            return as_deferred(self.run(lambda r: self._on_one_connection(r, op)))
        return as_deferred(self.run(op))

    async def _on_one_connection(self, r: Any, op: Callable[[Any], Awaitable[Any]]) -> Any:
        async with r.client() as single:            # a dedicated connection of the pool
            result = await op(single)
            replicas = await single.execute_command("WAIT", self.min_replicas,
                                                    self.replica_timeout_ms)
        if int(replicas) < self.min_replicas:
            raise StoreUnavailable(
                f"redis: the write reached {replicas} of {self.min_replicas} replica(s) "
                f"within {self.replica_timeout_ms} ms: not acknowledged")
        return result

    def script(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any],
               durable: bool = False) -> Deferred:
        """Run a Lua script; fires with its decoded reply, fails with StoreUnavailable.
        `durable`: with redis.min_replicas_ack set, the reply counts only once that many
        replicas have the write (WAIT on the same connection); fewer fail the write."""
        if durable and self.min_replicas > 0:
            return self.call(lambda r: self._replicated(r, script, keys, args))
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

    async def _replicated(self, r: Any, script: LuaScript, keys: Sequence[str],
                          args: Sequence[Any]) -> Any:
        for command, body in (("EVALSHA", script.sha), ("EVAL", script.source)):
            async with r.pipeline(transaction=False) as p:      # one connection: WAIT sees it
                p.execute_command(command, body, len(keys), *keys, *args)
                p.execute_command("WAIT", self.min_replicas, self.replica_timeout_ms)
                reply, replicas = await p.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError):
                continue
            if isinstance(reply, Exception):
                raise reply
            if int(replicas) < self.min_replicas:
                raise StoreUnavailable(
                    f"redis: the write reached {replicas} of {self.min_replicas} replica(s) "
                    f"within {self.replica_timeout_ms} ms: not acknowledged")
            return reply
        raise StoreUnavailable("redis: NOSCRIPT after EVAL")

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
        """PING; through Sentinel also which server is the master now (`master`)."""
        if self._lane is None and hasattr(getattr(self.client, "connection_pool", None),
                                          "get_master_address"):
            return as_deferred(self.run(self._ping_and_locate))
        return self.call(lambda r: r.ping())

    async def _ping_and_locate(self, client: Any) -> Any:
        answer = await client.ping()
        host, port = await client.connection_pool.get_master_address()
        master = f"{host}:{port}"
        if self.master is not None and master != self.master:
            log.warn("Redis: the master is now {new} (was {old}): a Sentinel failover",
                     new=master, old=self.master)
            if self.metrics is not None:
                self.metrics.master_changes.inc()
        self.master = master
        return answer

    async def aclose(self) -> None:
        if self._lane is not None:
            self._lane.close()
        await self.client.aclose()

    def close(self) -> Deferred:
        return as_deferred(self.aclose())
