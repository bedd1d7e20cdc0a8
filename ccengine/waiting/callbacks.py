"""Callback requests: durable, ordered by first join, handed to the dialler without loss or double.

States: `pending` (in `cc:callbacks:ready:{queue}`, score = -priority, so the dialler takes
them in the order of the callers' first join) -> `claimed` (moved atomically to
`cc:callbacks:processing`, score = claim time) -> `completed` | `failed` (finished by the
dialler) ; `pending` -> `expired` (sweep, after `callback_expire_hours`). A claim that is not
finished within `claim_timeout_seconds` goes back to ready (re-delivery), and `release`
returns it at once after a failed attempt. Each transition is one Lua script, so a crash
between two steps cannot leave an id in two places or none; Redis runs with AOF, so an
acknowledged request survives a restart (docs/waiting.md, "Handoff to the dialler").

One open callback per number: `cc:callback:open:{number}` points at it; a repeat request
updates that one (keeps the earlier place, extends the expiry) instead of adding another.
"""
from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.defer import Deferred

from ccengine.store import keys
from ccengine.store.base import LuaScript, RedisConnection
from ccengine.waiting.numbers import NumberRejected

OPEN_STATES = ("pending", "claimed")
FINAL_OUTCOMES = ("completed", "failed")

_PREFIXES = {
    "cb": keys.callback("x")[:-1],
    "ready": keys.callbacks_ready("x")[:-1],
    "line": keys.line("x")[:-1],
    "seen": keys.line_seen("x")[:-1],
    "open": keys.callback_open("0")[:-1],
}

# ARGV: number queue language call_id priority joined now expires replace_member entry_key
#       cb ready line seen open
_REQUEST = LuaScript("""
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {'blocked'} end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return {'do_not_call'} end
local open_key = ARGV[15] .. ARGV[1]
local id = redis.call('GET', open_key)
local created = 0
local k
if id then
  k = ARGV[11] .. id
  local state = redis.call('HGET', k, 'state')
  if state ~= 'pending' and state ~= 'claimed' then id = nil end
end
if id then
  local queue = redis.call('HGET', k, 'queue')
  redis.call('HSET', k, 'call_id', ARGV[4], 'language', ARGV[3], 'updated', ARGV[7])
  redis.call('HINCRBY', k, 'requests', 1)
  if tonumber(ARGV[8]) > tonumber(redis.call('HGET', k, 'expires')) then
    redis.call('HSET', k, 'expires', ARGV[8])
    redis.call('ZADD', KEYS[4], ARGV[8], id)
  end
  local prio = tonumber(ARGV[5])
  if queue == ARGV[2] and prio > tonumber(redis.call('HGET', k, 'priority')) then
    -- the repeat comes from an earlier place in the same queue: keep the earlier one
    redis.call('HSET', k, 'priority', ARGV[5], 'joined', ARGV[6])
    redis.call('ZADD', ARGV[13] .. queue, -prio, 'cb:' .. id)
    if redis.call('ZSCORE', ARGV[12] .. queue, id) then
      redis.call('ZADD', ARGV[12] .. queue, -prio, id)
    end
  end
else
  id = tostring(redis.call('INCR', KEYS[3]))
  k = ARGV[11] .. id
  redis.call('HSET', k, 'id', id, 'number', ARGV[1], 'queue', ARGV[2], 'language', ARGV[3],
    'call_id', ARGV[4], 'priority', ARGV[5], 'joined', ARGV[6], 'requested', ARGV[7],
    'updated', ARGV[7], 'expires', ARGV[8], 'state', 'pending', 'requests', 1,
    'deliveries', 0)
  redis.call('ZADD', ARGV[12] .. ARGV[2], -tonumber(ARGV[5]), id)
  redis.call('ZADD', ARGV[13] .. ARGV[2], -tonumber(ARGV[5]), 'cb:' .. id)
  redis.call('ZADD', KEYS[4], ARGV[8], id)
  redis.call('SET', open_key, id)
  created = 1
end
if ARGV[9] ~= '' then
  redis.call('ZREM', ARGV[13] .. ARGV[2], ARGV[9])
  redis.call('HDEL', ARGV[14] .. ARGV[2], ARGV[9])
  redis.call('DEL', ARGV[10])
end
return {'ok', id, created}
""")

# KEYS: processing.  ARGV: now, cb prefix, ready keys...
_CLAIM = LuaScript("""
local best, best_key, best_joined
for i = 3, #ARGV do
  local head = redis.call('ZRANGE', ARGV[i], 0, 0)
  if head[1] then
    local joined = tonumber(redis.call('HGET', ARGV[2] .. head[1], 'joined') or '0')
    if not best or joined < best_joined then
      best, best_key, best_joined = head[1], ARGV[i], joined
    end
  end
end
if not best then return false end
local k = ARGV[2] .. best
redis.call('ZREM', best_key, best)
redis.call('ZADD', KEYS[1], ARGV[1], best)
redis.call('HSET', k, 'state', 'claimed', 'claimed_at', ARGV[1])
redis.call('HINCRBY', k, 'deliveries', 1)
return redis.call('HGETALL', k)
""")

# KEYS: processing, expiry, done.  ARGV: id outcome now keep required_state cb ready line open
_FINISH = LuaScript("""
local k = ARGV[6] .. ARGV[1]
local state = redis.call('HGET', k, 'state')
if state ~= ARGV[5] then return false end
local queue = redis.call('HGET', k, 'queue')
local number = redis.call('HGET', k, 'number')
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', ARGV[7] .. queue, ARGV[1])
redis.call('ZREM', ARGV[8] .. queue, 'cb:' .. ARGV[1])
if redis.call('GET', ARGV[9] .. number) == ARGV[1] then redis.call('DEL', ARGV[9] .. number) end
redis.call('HSET', k, 'state', ARGV[2], 'outcome', ARGV[2], 'finished_at', ARGV[3])
redis.call('EXPIRE', k, tonumber(ARGV[4]))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))
return queue
""")

# KEYS: processing.  ARGV: oldest claim time ('+inf' for one id), cb prefix, ready prefix, [id]
_REQUEUE = LuaScript("""
local ids
if ARGV[4] then
  if not redis.call('ZSCORE', KEYS[1], ARGV[4]) then return 0 end
  ids = {ARGV[4]}
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
end
for _, id in ipairs(ids) do
  local k = ARGV[2] .. id
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', ARGV[3] .. redis.call('HGET', k, 'queue'),
             -tonumber(redis.call('HGET', k, 'priority')), id)
  redis.call('HSET', k, 'state', 'pending')
end
return #ids
""")


@dataclass(frozen=True)
class CallbackRequest:
    id: str
    number: str
    queue: str
    language: str
    call_id: str
    priority: int         # QUEUE_PRIO that puts the called-back customer at the caller's place
    joined: float         # the caller's first join (engine clock)
    requested: float
    expires: float
    state: str
    requests: int = 1
    deliveries: int = 0

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> CallbackRequest:
        return cls(id=h["id"], number=h["number"], queue=h["queue"], language=h["language"],
                   call_id=h["call_id"], priority=int(h["priority"]), joined=float(h["joined"]),
                   requested=float(h["requested"]), expires=float(h["expires"]),
                   state=h["state"], requests=int(h.get("requests", 1)),
                   deliveries=int(h.get("deliveries", 0)))


@dataclass(frozen=True)
class StoredCallback:
    id: str
    created: bool          # False: an open request for the number was updated


class CallbackStore:
    """The callback requests in Redis; every method returns a Deferred."""

    def __init__(self, conn: RedisConnection, queues: list[str], expire_hours: int,
                 keep_days: int = 30, metrics=None):
        self.conn = conn
        self.queues = list(queues)
        self.expire_seconds = expire_hours * 3600
        self.keep_seconds = keep_days * 86400
        self.metrics = metrics

    # --- the caller's side ----------------------------------------------------------------
    def request(self, number: str, queue: str, language: str, call_id: str, priority: int,
                joined: float, now: float, replaces_caller: str = "") -> Deferred:
        """Store (or update) the open callback for a validated number; fires with a
        StoredCallback, fails with NumberRejected (blocklist, do-not-call) or StoreUnavailable.
        `replaces_caller` (a uniqueid) leaves the line in the same step."""
        keys_ = [keys.BLOCKLIST, keys.DNC, keys.CALLBACK_SEQ, keys.CALLBACKS_EXPIRY]
        member = entry = ""
        if replaces_caller:
            member = "call:" + keys.id_part(replaces_caller)
            entry = keys.line_entry(queue, replaces_caller)
        args = [keys.number_part(number), keys.id_part(queue), language, keys.id_part(call_id),
                priority, f"{joined:.3f}", f"{now:.3f}", f"{now + self.expire_seconds:.3f}",
                member, entry, *_PREFIXES.values()]

        def stored(reply: list) -> StoredCallback:
            if reply[0] != "ok":
                raise NumberRejected(reply[0])
            return StoredCallback(str(reply[1]), bool(reply[2]))
        return self.conn.script(_REQUEST, keys_, args, durable=True).addCallback(stored)

    # --- the dialler's side (issue 6) -----------------------------------------------------
    def claim_next(self, now: float, queue: str | None = None) -> Deferred:
        """Move the next callback (earliest first join; of `queue` or of any queue) to
        processing; fires with a CallbackRequest (state `claimed`) or None."""
        queues = [queue] if queue else self.queues
        args = [f"{now:.3f}", _PREFIXES["cb"], *(keys.callbacks_ready(q) for q in queues)]

        def claimed(flat: list) -> CallbackRequest | None:
            if not flat:
                return None
            return CallbackRequest.from_hash(dict(zip(flat[::2], flat[1::2])))
        return self.conn.script(_CLAIM, [keys.CALLBACKS_PROCESSING], args).addCallback(claimed)

    def complete(self, callback_id: str, outcome: str, now: float) -> Deferred:
        """Finish a claimed callback with `completed` or `failed`; fires True, or False when it
        was not claimed (already finished, re-delivered and finished by another claim)."""
        if outcome not in FINAL_OUTCOMES:
            raise ValueError(f"outcome must be one of {FINAL_OUTCOMES}")
        return self._finish_one(callback_id, outcome, now, "claimed")

    def release(self, callback_id: str) -> Deferred:
        """Put a claimed callback back in ready after a failed attempt; fires True if it was
        claimed. Its place (priority) is unchanged."""
        args = ["+inf", _PREFIXES["cb"], _PREFIXES["ready"], keys.id_part(callback_id)]
        return self.conn.script(_REQUEUE, [keys.CALLBACKS_PROCESSING], args).addCallback(bool)

    def hand_over(self, callback_id: str, now: float) -> Deferred:
        """The dialler has stored its own durable job for this claim: take it out of
        re-delivery (the job's retries can outlast any claim timeout). The callback stays
        `claimed`, in the caller's line, until `complete`; fires True if it was claimed."""
        key = keys.callback(keys.id_part(callback_id))

        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.zrem(keys.CALLBACKS_PROCESSING, callback_id)
                p.hget(key, "state")
                removed, state = await p.execute()
            if state != "claimed":
                return False
            await r.hset(key, "handed_over_at", f"{now:.3f}")
            return bool(removed)
        return self.conn.call(op)

    def redeliver(self, now: float, claim_timeout: float) -> Deferred:
        """Return claims older than `claim_timeout` seconds to ready; fires with a count."""
        args = [f"{now - claim_timeout:.3f}", _PREFIXES["cb"], _PREFIXES["ready"]]
        return self.conn.script(_REQUEUE, [keys.CALLBACKS_PROCESSING], args).addCallback(int)

    # --- housekeeping and reading ---------------------------------------------------------
    def expire(self, now: float) -> Deferred:
        """Finish pending callbacks past their expiry as `expired`; fires with their queues."""
        async def run() -> list[str]:
            due = await self.conn.call(
                lambda r: r.zrangebyscore(keys.CALLBACKS_EXPIRY, "-inf", now))
            queues = []
            for callback_id in due:
                queue = await self._finish_call(callback_id, "expired", now, "pending")
                if queue:
                    queues.append(queue)
            return queues
        d = Deferred.fromCoroutine(run())
        if self.metrics is not None:
            d.addCallback(self._count_expired)
        return d

    def get(self, callback_id: str) -> Deferred:
        async def op(r):
            h = await r.hgetall(keys.callback(keys.id_part(callback_id)))
            return CallbackRequest.from_hash(h) if h else None
        return self.conn.call(op)

    def open_for(self, number: str) -> Deferred:
        """The open callback id for a number, or None."""
        return self.conn.call(lambda r: r.get(keys.callback_open(keys.number_part(number))))

    def pending_counts(self) -> Deferred:
        """{queue: callbacks waiting for the dialler} for every configured queue."""
        async def op(r):
            async with r.pipeline(transaction=False) as p:
                for q in self.queues:
                    p.zcard(keys.callbacks_ready(q))
                counts = await p.execute()
            return dict(zip(self.queues, counts))
        return self.conn.call(op)

    def ready(self, queue: str) -> Deferred:
        """Ids waiting for the dialler in `queue`, in the order they will be claimed."""
        return self.conn.call(lambda r: r.zrange(keys.callbacks_ready(queue), 0, -1))

    # --- internals ------------------------------------------------------------------------
    def _finish_one(self, callback_id: str, outcome: str, now: float, required: str) -> Deferred:
        d = self._finish_call(callback_id, outcome, now, required)

        def counted(queue):
            if queue and self.metrics is not None:
                self.metrics.finished(outcome, queue)
            return bool(queue)
        return d.addCallback(counted)

    def _finish_call(self, callback_id: str, outcome: str, now: float,
                     required: str) -> Deferred:
        """Fires with the callback's queue, or None when it was not in state `required`."""
        keys_ = [keys.CALLBACKS_PROCESSING, keys.CALLBACKS_EXPIRY, keys.CALLBACKS_DONE]
        args = [keys.id_part(callback_id), outcome, f"{now:.3f}", self.keep_seconds, required,
                _PREFIXES["cb"], _PREFIXES["ready"], _PREFIXES["line"], _PREFIXES["open"]]
        return self.conn.script(_FINISH, keys_, args)

    def _count_expired(self, queues: list[str]) -> list[str]:
        for queue in queues:
            self.metrics.finished("expired", queue)
        return queues
