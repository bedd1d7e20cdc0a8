"""Call records: one hash per call, an index by start time, bounded in count and age.

Bounds (documented in docs/records.md): the index `cc:calls` keeps the newest
`records.max_calls` ids (older ids and their hashes are deleted when the index is trimmed),
and each record hash expires `records.ttl_days` after it was last written.
"""
from __future__ import annotations

from typing import Mapping

from twisted.internet.defer import Deferred

from ccengine.store import keys
from ccengine.store.base import RedisConnection

# Trimming is done by a Lua script so that the ids dropped from the index and their hashes
# go in the same step (no orphans, one round trip).
_TRIM = """
local n = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if n <= 0 then return 0 end
local old = redis.call('ZRANGE', KEYS[1], 0, n - 1)
for _, id in ipairs(old) do redis.call('DEL', ARGV[2] .. id) end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - 1)
return n
"""


class CallRecordStore:
    def __init__(self, conn: RedisConnection, max_calls: int, ttl_days: int):
        self.conn = conn
        self.max_calls = max_calls
        self.ttl = ttl_days * 86400
        self._trim = conn.client.register_script(_TRIM)

    def save(self, call_id: str, started: float, fields: Mapping[str, str | int | float]) -> Deferred:
        """Create or extend a record and index it; trims the index in the same round trip."""
        key = keys.call(call_id)
        mapping = {k: str(v) for k, v in fields.items()}

        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.hset(key, mapping=mapping)
                p.expire(key, self.ttl)
                p.zadd(keys.CALLS, {call_id: started}, nx=True)
                await self._trim(keys=[keys.CALLS], args=[self.max_calls, keys.PREFIX + "call:"], client=p)
                await p.execute()
        return self.conn.call(op)

    def update(self, call_id: str, fields: Mapping[str, str | int | float]) -> Deferred:
        """Add fields to an existing record (outcome, agent, notes); no-op for an unknown id."""
        key = keys.call(call_id)
        mapping = {k: str(v) for k, v in fields.items()}

        async def op(r):
            if not await r.exists(key):
                return False
            async with r.pipeline(transaction=True) as p:
                p.hset(key, mapping=mapping)
                p.expire(key, self.ttl)
                await p.execute()
            return True
        return self.conn.call(op)

    def get(self, call_id: str) -> Deferred:
        return self.conn.call(lambda r: r.hgetall(keys.call(call_id)))

    def recent(self, count: int = 20) -> Deferred:
        return self.conn.call(lambda r: r.zrevrange(keys.CALLS, 0, count - 1))
