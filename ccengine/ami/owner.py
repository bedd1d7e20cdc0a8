"""Which engine follows an Asterisk server's events when several share it (ami.shared = true).

Every engine keeps its own AMI connection for actions (an agent's feature code reaches
whichever engine its AGI reached), but only one at a time receives the server's events, for
the queue picture, the agents' states and the metrics: the owner of a lease in Redis,
`cc:ami:owner:<server>` = the engine's id, set with NX and a TTL of `LEASE_MS`, renewed every
`RENEW` seconds while the engine is connected to that Asterisk. Each acquisition increments
`cc:ami:fence:<server>`: the fencing token, logged and exposed, so a late message from a
former owner can be told apart. The others log in with `Events: off` and poll; when the
owner dies or loses its link, its lease expires and a standby takes it within
LEASE_MS + RENEW (about 4 s): it turns its events on (AMI `Events` action, EventMask on,
capture ami4_login_ping_events) and resyncs from QueueStatus (queues/feed.py). No event is
counted twice: a standby receives none; events between the old owner's death and the
takeover are not seen, and the QueueStatus resync puts the states right. The owner also runs
the singletons (sweepers, the dialler: Feature.singletons), so each job runs on one engine, and
reports the queue gauges (a standby reports 0 waiting callers), so sum() across engines is
right.
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


class AmiOwnership(TimerService):
    def __init__(self, redis: Any, ami: Any, feed: Any, server: str, engine_id: str,
                 clock: Any, registry: CollectorRegistry):
        super().__init__(RENEW, self.check)
        self.clock = clock
        self.redis = redis
        self.ami = ami
        self.feed = feed
        self.engine_id = engine_id
        self.keys = (f"cc:ami:owner:{server}", f"cc:ami:fence:{server}")
        self.owner = False
        self.token = 0
        # Services that run on the owner only (Feature.singletons: sweepers, the dialler).
        self.singletons: list[Any] = []
        self.gauge = Gauge("ccengine_ami_owner",
                           "1 while this engine follows the Asterisk server's events",
                           registry=registry)
        # A fresh login asks for events only on the owner (it resyncs through the feed's own
        # login callback).
        ami.events_wanted = lambda: self.owner

    def check(self) -> Deferred | None:
        if not self.ami.connected:
            # Not connected to this Asterisk: do not hold (or take) the lease; it expires.
            if self.owner:
                self._lost("the AMI link is down")
            return None
        d = self.redis.script(_HOLD, self.keys, (self.engine_id, LEASE_MS))
        d.addCallbacks(self._held, self._failed)
        return d

    def _held(self, token: Any) -> None:
        token = int(token)
        if token and not self.owner:
            self.owner, self.token = True, token
            self.gauge.set(1)
            log.info("AMI: this engine ({id}) now follows the events (fencing token {t})",
                     id=self.engine_id, t=token)
            self._events(True)
            for service in self.singletons:
                if not service.running:
                    service.startService()
        elif not token and self.owner:
            self._lost("another engine holds the lease")

    def _failed(self, failure: Any) -> None:
        if failure.check(StoreUnavailable) and self.owner:
            self._lost("Redis is unreachable")
        elif not failure.check(StoreUnavailable):
            log.failure("AMI ownership check failed", failure)

    def _lost(self, why: str) -> None:
        self.owner = False
        self.gauge.set(0)
        log.warn("AMI: this engine ({id}) stops following the events: {why}",
                 id=self.engine_id, why=why)
        self._events(False)
        for service in self.singletons:
            if service.running:
                service.stopService()

    def _events(self, on: bool) -> None:
        if not self.ami.connected:
            return
        d = self.ami.send_action("Events", [("EventMask", "on" if on else "off")])
        if on:
            d.addCallback(lambda _: self.feed.resync())
        d.addErrback(lambda f: log.warn("AMI Events {m} failed: {e}", m="on" if on else "off",
                                        e=f.getErrorMessage()))

    def stopService(self) -> Any:
        super().stopService()
        for service in self.singletons:
            if service.running:
                service.stopService()
        if self.owner:
            self.owner = False
            return self.redis.script(_RELEASE, self.keys[:1], (self.engine_id,)).addErrback(
                lambda f: None)
        return None
