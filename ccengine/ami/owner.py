"""Which engine counts an Asterisk server's events, and which runs the jobs, when several
engines share Redis and the Asterisk servers (ami.shared = true; docs/scaling.md).

Every engine keeps its own AMI connection to every server, receives the (filtered) events and
keeps the whole queue picture: its FastAGI routes and its console need a live picture, and an
agent's feature code reaches whichever engine its AGI reached. What an event *causes* (queue
metrics, agent states written to Redis, relogs, the waiting gauges) is the business of one
engine per server: the owner of the lease `cc:ami:owner:<server>` = the engine's id, set with
NX and a TTL of LEASE_MS, renewed every RENEW seconds while the engine is logged in to that
server. Each acquisition increments `cc:ami:fence:<server>`, the fencing token, logged with
the takeover. When the owner dies or loses its link to the server, its lease expires and
another engine takes it within LEASE_MS + RENEW (about 4 s): the queue feed then resyncs that
server from QueueStatus (queues/feed.py) for the consumers. No event is counted twice: before
the takeover the new owner gave none of them to its consumers; the events of the seconds
between are not counted, and the resync puts the states right.

The jobs (sweepers, the dialler: Feature.singletons) run on one engine at a time: the holder
of `cc:engine:singletons`, taken the same way by an engine that is logged in to at least one
Asterisk server (its jobs act over AMI). Each job also claims its work in Redis.
"""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ccengine.store.base import LuaScript, StoreUnavailable

log = Logger()
LEASE_MS = 3000
RENEW = 1.0
SINGLETONS = "cc:engine:singletons"

# KEYS: lease, fence. ARGV: engine id, ttl ms. Returns the fencing token when this engine
# holds the lease now (new or renewed), 0 when another engine holds it.
_HOLD = LuaScript("""
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
if owner then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
""")
# KEYS: lease. ARGV: engine id. Gives the lease up if it is ours.
_RELEASE = LuaScript("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")


class _Lease(TimerService):
    """A lease in Redis held while `eligible()`; `gained()` and `lost(why)` say when."""

    what = "the lease"

    def __init__(self, redis: Any, key: str, engine_id: str):
        super().__init__(RENEW, self.check)
        self.redis = redis
        self.engine_id = engine_id
        self.keys = (key, key.replace(":owner:", ":fence:") if ":owner:" in key
                     else f"{key}:fence")
        self.held = False
        self.token = 0

    def eligible(self) -> bool:
        return True

    def check(self) -> Deferred | None:
        if not self.eligible():
            # Not able to do the work: do not hold (or take) the lease; it expires.
            if self.held:
                self._drop("this engine is not logged in to the Asterisk server")
            return None
        d = self.redis.script(_HOLD, self.keys, (self.engine_id, LEASE_MS))
        d.addCallbacks(self._answer, self._failed)
        return d

    def _answer(self, token: Any) -> None:
        token = int(token)
        if token and not self.held:
            self.held, self.token = True, token
            log.info("{what}: this engine ({id}) holds it now (fencing token {t})",
                     what=self.what, id=self.engine_id, t=token)
            self.gained()
        elif not token and self.held:
            self._drop("another engine holds the lease")

    def _failed(self, failure: Any) -> None:
        if failure.check(StoreUnavailable) and self.held:
            self._drop("Redis is unreachable")
        elif not failure.check(StoreUnavailable):
            log.failure("{what}: lease check failed", failure, what=self.what)

    def _drop(self, why: str) -> None:
        self.held = False
        log.warn("{what}: this engine ({id}) lets it go: {why}", what=self.what,
                 id=self.engine_id, why=why)
        self.lost()

    def gained(self) -> None:
        """Now held."""

    def lost(self) -> None:
        """No longer held."""

    def stopService(self) -> Any:
        super().stopService()
        if self.held:
            self.held = False
            self.lost()
            return self.redis.script(_RELEASE, self.keys[:1], (self.engine_id,)).addErrback(
                lambda f: None)
        return None


class AmiOwnership(_Lease):
    """The events lease of one Asterisk server (`client`: its AmiClient)."""

    def __init__(self, redis: Any, client: Any, feed: Any, engine_id: str, gauge: Any):
        super().__init__(redis, f"cc:ami:owner:{client.name}", engine_id)
        self.client = client
        self.feed = feed
        self.server = client.name
        self.what = f"AMI events of {client.name}"
        self.gauge = gauge.labels(client.name)
        self.gauge.set(0)

    @property
    def owner(self) -> bool:
        return self.held

    def eligible(self) -> bool:
        return bool(self.client.connected)

    def gained(self) -> None:
        self.gauge.set(1)
        # The consumers missed what happened while another engine (or nobody) owned it.
        self.feed.resync(self.server).addErrback(lambda f: None)

    def lost(self) -> None:
        self.gauge.set(0)


class SingletonLease(_Lease):
    """The jobs lease: starts the singletons while held, stops them when not."""

    what = "the jobs (sweepers, dialler)"

    def __init__(self, redis: Any, ami: Any, engine_id: str, registry: CollectorRegistry):
        super().__init__(redis, SINGLETONS, engine_id)
        self.ami = ami
        self.singletons: list[Any] = []
        self.gauge = Gauge("ccengine_jobs_owner",
                           "1 while this engine runs the sweepers and the dialler",
                           registry=registry)

    def eligible(self) -> bool:
        return bool(self.ami.connected)

    def gained(self) -> None:
        self.gauge.set(1)
        for service in self.singletons:
            if not service.running:
                service.startService()

    def lost(self) -> None:
        self.gauge.set(0)
        for service in self.singletons:
            if service.running:
                service.stopService()

    def stopService(self) -> Any:
        d = super().stopService()
        for service in self.singletons:
            if service.running:
                service.stopService()
        return d


def owner_gauge(registry: CollectorRegistry) -> Gauge:
    return Gauge("ccengine_ami_owner",
                 "1 while this engine counts the Asterisk server's events (ami.shared)",
                 ["server"], registry=registry)
