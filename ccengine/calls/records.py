"""Call records: one hash per call, an index by start time, bounded in count and age.

Bounds (documented in docs/records.md): the index `cc:calls` keeps the newest
`records.max_calls` ids (older ids and their hashes are deleted when the index is trimmed),
and each record hash expires `records.ttl_days` after it was last written.
"""
from __future__ import annotations

from collections.abc import Mapping

from twisted.internet.defer import Deferred

from ccengine.store import keys
from ccengine.store.base import LuaScript, RedisConnection

# The whole save is one Lua script: the record, its TTL, its index entry, and the trimming of
# the index together with the hashes of the ids it drops (no orphans). A script runs atomically
# like MULTI/EXEC, and one EVALSHA is far cheaper for redis-py to pack and parse than a
# six-command transaction (bench/README.md).
# KEYS: record hash, index. ARGV: call id, start time, ttl seconds, max_calls, record key
# prefix, mode, then the record's field/value pairs. Mode "create" refuses (-1, nothing
# written) when a record with that id exists already, so a second session with the same
# agi_uniqueid (a replay, a hostile peer) cannot overwrite it; "save" creates or extends.
_SAVE = LuaScript("""
if ARGV[6] == 'create' and redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
local n = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if n <= 0 then return 0 end
local old = redis.call('ZRANGE', KEYS[2], 0, n - 1)
for _, id in ipairs(old) do redis.call('DEL', ARGV[5] .. id) end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - 1)
return n
""")


class CallRecordStore:
    def __init__(self, conn: RedisConnection, max_calls: int, ttl_days: int):
        self.conn = conn
        self.max_calls = max_calls
        self.ttl = ttl_days * 86400

    def save(self, call_id: str, started: float, fields: Mapping[str, str | int | float]) -> Deferred:
        """Create or extend a record and index it; trims the index in the same round trip."""
        return self._write("save", call_id, started, fields)

    def create(self, call_id: str, started: float,
               fields: Mapping[str, str | int | float]) -> Deferred:
        """Like save, for a call's first record: fires -1 (and writes nothing) when a record
        with this id exists already."""
        return self._write("create", call_id, started, fields)

    def _write(self, mode: str, call_id: str, started: float,
               fields: Mapping[str, str | int | float]) -> Deferred:
        return self.conn.script(_SAVE, *self.write_arguments(mode, call_id, started, fields))

    def write_arguments(self, mode: str, call_id: str, started: float,
                        fields: Mapping[str, str | int | float]) -> tuple[tuple, list]:
        """The save script's keys and arguments for one record in `mode` ("save" or "create";
        also bench/servers.py, which sends them through another client)."""
        args = [call_id, started, self.ttl, self.max_calls, keys.PREFIX + "call:", mode]
        for name, value in fields.items():
            args += (name, str(value))
        return (keys.call(call_id), keys.CALLS), args

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
