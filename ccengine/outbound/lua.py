"""The job queue's Redis scripts. Each state change of a job is one script, so a crash between
two steps cannot leave a job in two places (or none), and two workers cannot both win.

Job states: waiting (in cc:outbound:due:{kind}) -> claimed (in cc:outbound:processing, score =
lease end, with a random lease token) -> dialling (an Originate may have been sent: ChannelId in
cc:outbound:inflight) -> waiting (retry) | done | failed | cancelled.
"""

from ccengine.store.base import LuaScript

FINAL_STATES = ("done", "failed", "cancelled")

# KEYS: job, due.  ARGV: due score, then field/value pairs.  1 = created, 0 = already there.
ADD = LuaScript("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[1], redis.call('HGET', KEYS[1], 'id'))
return 1
""")

# KEYS: due, processing, outside, paused.  ARGV: now, lease end, token, job prefix, kind.
CLAIM = LuaScript("""
if redis.call('SISMEMBER', KEYS[4], 'all') == 1 or redis.call('SISMEMBER', KEYS[4], ARGV[5]) == 1 then
  return false
end
local head = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if not head[1] then return false end
local id = head[1]
local k = ARGV[4] .. id
redis.call('ZREM', KEYS[1], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZADD', KEYS[2], ARGV[2], id)
redis.call('HSET', k, 'state', 'claimed', 'token', ARGV[3], 'claimed_at', ARGV[1])
redis.call('HINCRBY', k, 'deliveries', 1)
return redis.call('HGETALL', k)
""")

# Back to waiting without an attempt (outside the window, no free agent, rate limit).
# KEYS: job, due, processing, outside.  ARGV: token, not before, outside (0/1), id.
DEFER = LuaScript("""
if redis.call('HGET', KEYS[1], 'state') ~= 'claimed' or redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
if ARGV[3] == '1' then redis.call('ZADD', KEYS[4], ARGV[2], ARGV[4]) end
redis.call('HSET', KEYS[1], 'state', 'waiting', 'token', '', 'due', ARGV[2])
return 1
""")

# The one step that allows an Originate. Checks, in order: still this worker's claim (a job
# re-delivered to another worker refuses the old one), do-not-call at dial time, the global
# rate, the per-number interval; then marks the job dialling with its ChannelId.
# KEYS: job, processing, inflight, rate, dnc, number guard.
# ARGV: token, channel id, now, lease end, max per minute, interval seconds, id, number.
BEGIN = LuaScript("""
if redis.call('HGET', KEYS[1], 'state') ~= 'claimed' or redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return {'stale'}
end
if redis.call('SISMEMBER', KEYS[5], ARGV[8]) == 1 then return {'do_not_call'} end
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 60)
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then
  local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  return {'rate', tostring(tonumber(oldest[2]) + 60)}
end
-- The per-number interval keeps two different jobs from calling one number close together;
-- a job's own retries follow retry_minutes instead.
local ttl = redis.call('PTTL', KEYS[6])
if ttl > 0 and redis.call('GET', KEYS[6]) ~= ARGV[7] then return {'interval', tostring(now + ttl / 1000)} end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'dialling', 'channel_id', ARGV[2], 'dial_started', ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[7])
redis.call('ZADD', KEYS[4], now, ARGV[2])
if tonumber(ARGV[6]) > 0 then redis.call('SET', KEYS[6], ARGV[7], 'PX', math.floor(tonumber(ARGV[6]) * 1000)) end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[7])
return {'ok', tostring(n)}
""")

# The Originate was certainly not sent (AMI not connected): undo BEGIN.
# KEYS: job, processing, inflight, rate, due, number guard.  ARGV: channel id, not before, id.
ABORT = LuaScript("""
if redis.call('HGET', KEYS[1], 'state') ~= 'dialling' or redis.call('HGET', KEYS[1], 'channel_id') ~= ARGV[1] then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if redis.call('GET', KEYS[6]) == ARGV[3] then redis.call('DEL', KEYS[6]) end
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[1], 'state', 'waiting', 'token', '', 'channel_id', '', 'due', ARGV[2])
return 1
""")

# The attempt's outcome is known: record it, then retry later or finish. Idempotent: a second
# OriginateResponse (or a verification racing the response) for the same ChannelId is ignored.
# KEYS: job, processing, inflight, due, done, attempts.
# ARGV: channel id, outcome, now, final state ('' = retry), next due, attempt JSON, id, keep.
FINISH_ATTEMPT = LuaScript("""
if redis.call('HGET', KEYS[1], 'state') ~= 'dialling' or redis.call('HGET', KEYS[1], 'channel_id') ~= ARGV[1] then
  return 0
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[7])
redis.call('RPUSH', KEYS[6], ARGV[6])
redis.call('HSET', KEYS[1], 'last_outcome', ARGV[2], 'token', '', 'channel_id', '', 'updated', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'state', ARGV[4], 'finished_at', ARGV[3])
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[8]))
else
  redis.call('HSET', KEYS[1], 'state', 'waiting', 'due', ARGV[5])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[7])
end
return 1
""")

# Finished without any Originate (do-not-call at dial time, number refused).
# KEYS: job, processing, done, attempts.  ARGV: token, outcome, now, final state, JSON, id.
FINISH_UNDIALLED = LuaScript("""
if redis.call('HGET', KEYS[1], 'state') ~= 'claimed' or redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[6])
redis.call('RPUSH', KEYS[4], ARGV[5])
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'last_outcome', ARGV[2], 'token', '',
           'finished_at', ARGV[3], 'updated', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[6])
return 1
""")

# Claims whose lease ended. A claimed job (the worker died before dialling) goes back to
# waiting at once: re-delivered, dialled once by the next claim. A dialling job is NOT
# re-queued: its Originate may have been sent, so its id is returned for a channel check.
# KEYS: processing.  ARGV: now, job prefix, due prefix.
REDELIVER = LuaScript("""
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local back, dialling = 0, {}
for _, id in ipairs(ids) do
  local k = ARGV[2] .. id
  local state = redis.call('HGET', k, 'state')
  if state == 'claimed' then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', ARGV[3] .. redis.call('HGET', k, 'kind'), ARGV[1], id)
    redis.call('HSET', k, 'state', 'waiting', 'token', '', 'due', ARGV[1])
    back = back + 1
  elseif state == 'dialling' then
    table.insert(dialling, id)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return {back, dialling}
""")

# KEYS: each kind's due and outside sets (in KINDS order, due first), processing, inflight.
# Returns their sizes in that order. The dialler's round asks every poll_interval, idle or
# not: through redis-py's pipeline that was the largest share of the idle engine's CPU
# (bench/ami_real.py, py-spy); on the lane it is one EVALSHA.
COUNTS = LuaScript("""
local out = {}
for i = 1, #KEYS - 1 do out[i] = redis.call('ZCARD', KEYS[i]) end
out[#KEYS] = redis.call('HLEN', KEYS[#KEYS])
return out
""")
