"""Call records: one hash per call, an index by start time, bounded in count and age.

Bounds (documented in docs/records.md): the index `cc:calls` keeps the newest
`records.max_calls` ids (older ids and their hashes are deleted when the index is trimmed),
and each record hash expires `records.ttl_days` after it was last written.
"""
from __future__ import annotations

import hashlib
from typing import Mapping

from redis.exceptions import NoScriptError
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
_TRIM_SHA = hashlib.sha1(_TRIM.encode()).hexdigest()


class CallRecordStore:
    def __init__(self, conn: RedisConnection, max_calls: int, ttl_days: int):
        self.conn = conn
        self.max_calls = max_calls
        self.ttl = ttl_days * 86400

    def save(self, call_id: str, started: float, fields: Mapping[str, str | int | float]) -> Deferred:
        """Create or extend a record and index it; trims the index in the same round trip."""
        key = keys.call(call_id)
        mapping = {k: str(v) for k, v in fields.items()}
        trim_args = (keys.CALLS, self.max_calls, keys.PREFIX + "call:")

        async def op(r):
            # EVALSHA with the sha computed here: redis-py's registered Script would send
            # SCRIPT EXISTS before every pipeline (an extra round trip per call). Redis only
            # lacks the script after a restart or SCRIPT FLUSH; then the whole transaction is
            # run again with EVAL, which also caches the script (HSET, EXPIRE and ZADD NX are
            # idempotent, so running them twice changes nothing).
            try:
                await self._save(r, key, mapping, call_id, started, "evalsha", _TRIM_SHA, trim_args)
            except NoScriptError:
                await self._save(r, key, mapping, call_id, started, "eval", _TRIM, trim_args)
        return self.conn.call(op)

    async def _save(self, r, key: str, mapping: dict, call_id: str, started: float,
                    command: str, script: str, trim_args: tuple) -> None:
        async with r.pipeline(transaction=True) as p:
            p.hset(key, mapping=mapping)
            p.expire(key, self.ttl)
            p.zadd(keys.CALLS, {call_id: started}, nx=True)
            getattr(p, command)(script, 1, *trim_args)
            await p.execute()

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
