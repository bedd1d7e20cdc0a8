"""Customers, VIPs and the blocklist: who is calling."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from twisted.internet.defer import Deferred

from ccengine.store import keys
from ccengine.store.base import RedisConnection


@dataclass(frozen=True)
class CallerProfile:
    number: str
    tier: str = "new"          # new | known | vip
    name: str = ""
    language: str = ""
    blocked: bool = False
    # Replies of the reads another feature queued in the lookup's pipeline (see lookup).
    extra: tuple = field(default=(), compare=False, repr=False)


# Queues further reads on the lookup's pipeline (redis-py Pipeline), e.g. the caller's complaint
# index, so that they cost the call no round trip of their own.
PipelineReads = Callable[[Any], None]


class CustomerStore:
    def __init__(self, conn: RedisConnection):
        self.conn = conn

    def lookup(self, number: str, extra: PipelineReads | None = None) -> Deferred:
        """CallerProfile for a validated number, in one round trip (a pipeline).

        `extra(pipeline)` may queue more reads in the same pipeline; their replies are the
        profile's `extra`, in order."""
        key = keys.customer(number)

        async def op(r):
            async with r.pipeline(transaction=False) as p:
                p.hgetall(key)
                p.sismember(keys.BLOCKLIST, number)
                p.sismember(keys.VIP, number)
                if extra is not None:
                    extra(p)
                record, blocked, vip, *more = await p.execute()
            # A hash holding only a language preference does not make a caller "known".
            if vip or record.get("tier") == "vip":
                tier = "vip"
            else:
                tier = "known" if record.get("tier") == "known" or record.get("name") else "new"
            return CallerProfile(number=number, tier=tier, name=record.get("name", ""),
                                 language=record.get("language", ""), blocked=bool(blocked),
                                 extra=tuple(more))
        return self.conn.call(op)

    def put_customer(self, number: str, name: str = "", tier: str = "known",
                     language: str = "") -> Deferred:
        key = keys.customer(number)
        fields = {"name": name, "tier": tier, "language": language}

        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.hset(key, mapping=fields)
                if tier == "vip":
                    p.sadd(keys.VIP, number)
                else:
                    p.srem(keys.VIP, number)
                await p.execute()
        return self.conn.call(op)

    def set_language(self, number: str, language: str) -> Deferred:
        return self.conn.call(lambda r: r.hset(keys.customer(number), "language", language))

    def block(self, numbers: Iterable[str]) -> Deferred:
        numbers = [keys.number_part(n) for n in numbers]
        return self.conn.call(lambda r: r.sadd(keys.BLOCKLIST, *numbers) if numbers else _zero())

    def unblock(self, number: str) -> Deferred:
        return self.conn.call(lambda r: r.srem(keys.BLOCKLIST, keys.number_part(number)))

    def is_blocked(self, number: str) -> Deferred:
        return self.conn.call(lambda r: r.sismember(keys.BLOCKLIST, keys.number_part(number)))


async def _zero() -> int:
    return 0
