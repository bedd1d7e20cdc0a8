"""The engine's ordered line per queue: waiting callers and pending callbacks, in service order.

Redis keys (store/keys.py): `cc:line:{queue}` sorted set, score = -priority (the QUEUE_PRIO the
caller queues with, waiting/priority.py, so ascending score = service order and ZRANK = entries
served before); `cc:line:entry:{queue}:{uniqueid}` hash of a waiting caller (priority, joined);
`cc:line:seen:{queue}` hash member -> last announcement time.

A caller enters the line at its first announcement (after the queue's announce interval of
waiting; the dialplan queues them at once and passes their QUEUE_PRIO and first-entry time),
is refreshed at each announcement, and leaves when answered (AgentConnect), when its channel
hangs up (Hangup), when it becomes a callback (same score, member `cb:{id}`), or, if those
events were missed (engine restart, AMI down), when the sweep finds it not announced for
`stale_after` seconds. Each step is one Lua script: one round trip, atomic.
"""
from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.defer import Deferred

from ccengine.store import keys
from ccengine.store.base import LuaScript, RedisConnection

# KEYS: the queue's talk-time list. ARGV: seconds ("%.1f"), window. As the MULTI it replaces:
# newest first, the window's length kept; on the store's lane (one round trip, no redis-py:
# one per answered call, bench/ami_real.py).
_TALK_TIME = LuaScript("""
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 0
""")

# KEYS: line, entry, seen, aht.  ARGV: uniqueid, priority, joined, now, window, ttl
# The priority and the first entry come from the dialplan; a caller already in the line keeps
# the first `joined` it was announced with.
_JOIN = LuaScript("""
local member = 'call:' .. ARGV[1]
local joined = redis.call('HGET', KEYS[2], 'joined') or ARGV[3]
redis.call('HSET', KEYS[2], 'priority', ARGV[2], 'joined', joined)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
redis.call('ZADD', KEYS[1], -tonumber(ARGV[2]), member)
redis.call('HSET', KEYS[3], member, ARGV[4])
local rank = redis.call('ZRANK', KEYS[1], member)
local aht = redis.call('LRANGE', KEYS[4], 0, tonumber(ARGV[5]) - 1)
return {joined, rank + 1, aht}
""")

# KEYS: line, seen.  ARGV: member, entry key
_LEAVE = LuaScript("""
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', ARGV[2])
return removed
""")

# KEYS: line, seen.  ARGV: oldest allowed time, entry key prefix
_SWEEP = LuaScript("""
local seen = redis.call('HGETALL', KEYS[2])
local removed = 0
for i = 1, #seen, 2 do
  if tonumber(seen[i + 1]) < tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], seen[i])
    redis.call('HDEL', KEYS[2], seen[i])
    redis.call('DEL', ARGV[2] .. string.sub(seen[i], 6))
    removed = removed + 1
  end
end
return removed
""")


@dataclass(frozen=True)
class LinePlace:
    """Where a waiting caller stands, as returned by `WaitingLine.announce`."""
    queue: str
    uniqueid: str
    priority: int
    joined: float          # first queue entry (epoch, from the dialplan)
    position: int          # 1 = next to be served (callbacks ahead count)
    talk_times: tuple[float, ...]


class WaitingLine:
    def __init__(self, conn: RedisConnection, handling_time_window: int = 50,
                 entry_ttl: int = 86400):
        self.conn = conn
        self.window = handling_time_window
        self.entry_ttl = entry_ttl

    def announce(self, queue: str, uniqueid: str, prio: int, joined: float,
                 now: float) -> Deferred:
        """Enter the caller into the line (first time) or refresh it; fires with a LinePlace.
        `prio` is the QUEUE_PRIO the caller queues with, `joined` its first queue entry."""
        keys_ = [keys.line(queue), keys.line_entry(queue, uniqueid), keys.line_seen(queue),
                 keys.aht(queue)]
        args = [uniqueid, prio, f"{joined:.3f}", f"{now:.3f}", self.window, self.entry_ttl]

        def place(reply: list) -> LinePlace:
            first, position, aht = reply
            return LinePlace(queue, uniqueid, prio, float(first), int(position),
                             tuple(float(t) for t in aht))
        return self.conn.script(_JOIN, keys_, args).addCallback(place)

    def leave(self, queue: str, uniqueid: str) -> Deferred:
        """Remove a waiting caller (answered, hung up); fires with True if it was in the line."""
        keys_ = [keys.line(queue), keys.line_seen(queue)]
        args = ["call:" + keys.id_part(uniqueid), keys.line_entry(queue, uniqueid)]
        return self.conn.script(_LEAVE, keys_, args).addCallback(bool)

    def sweep(self, queue: str, oldest: float) -> Deferred:
        """Remove callers not announced since `oldest` (their end was missed); fires with a count."""
        keys_ = [keys.line(queue), keys.line_seen(queue)]
        prefix = keys.line_entry(queue, "x")[:-1]
        return self.conn.script(_SWEEP, keys_, [f"{oldest:.3f}", prefix]).addCallback(int)

    def members(self, queue: str) -> Deferred:
        """The line in service order: ['call:<uniqueid>' | 'cb:<id>', ...]."""
        return self.conn.call(lambda r: r.zrange(keys.line(queue), 0, -1))

    def record_talk_time(self, queue: str, seconds: float) -> Deferred:
        """Add one handled call's talk time to the queue's sliding window."""
        return self.conn.script(_TALK_TIME, (keys.aht(queue),), (f"{seconds:.1f}", self.window))
