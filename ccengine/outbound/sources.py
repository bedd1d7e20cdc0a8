"""Where jobs come from: callback requests (waiting feature) and complaint follow-ups.

Callbacks: `CallbackStore.claim_next` (docs/waiting.md, "Handoff to the dialler") hands over
one claimed request; it becomes job `cb-<callback id>` (ADD is idempotent, so a claim the
waiting feature re-delivers maps to the same job). When the job ends, the callback is
completed or failed. A re-delivered callback whose job already ended is completed at once.

Follow-ups: complaints/followup.py writes `cc:outbound:followup:{job}` + the id in
`cc:outbound:followups` (score = not before). One Lua script moves each into a job of kind
`followup` (same id, origin `ticket:<id>`), so a crash cannot lose or double one.

The customer's time zone: field `timezone` of `cc:customer:{number}` if it names a zone,
else the centre's (company.timezone).
"""
from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ccengine.outbound.jobs import Job, JobStore, new_job
from ccengine.outbound.windows import valid_zone
from ccengine.store import keys
from ccengine.store.base import LuaScript, RedisConnection

log = Logger()

# KEYS: followups.  ARGV: now, limit, followup prefix, job prefix, due key, customer prefix,
# default tz.  Returns the number of jobs created.
_IMPORT_FOLLOWUPS = LuaScript("""
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local created = 0
for _, id in ipairs(ids) do
  local src = ARGV[3] .. id
  local number = redis.call('HGET', src, 'number') or ''
  local ticket = redis.call('HGET', src, 'ticket') or ''
  redis.call('ZREM', KEYS[1], id)
  local ok_id = string.match(id, '^[A-Za-z0-9._-]+$') and #id <= 64
  local ok_number = string.match(number, '^[0-9]+$') and #number <= 32
  if not ok_id or not ok_number or not string.match(ticket, '^[0-9]+$') then
    redis.call('HSET', src, 'dialler', 'rejected')
  elseif redis.call('EXISTS', ARGV[4] .. id) == 0 then
    local tz = redis.call('HGET', ARGV[6] .. number, 'timezone') or ''
    if tz == '' then tz = ARGV[7] end
    local due = redis.call('HGET', src, 'not_before') or ARGV[1]
    redis.call('HSET', ARGV[4] .. id, 'id', id, 'kind', 'followup', 'number', number,
      'due', due, 'tz', tz, 'origin', 'ticket:' .. ticket,
      'queue', redis.call('HGET', src, 'queue') or '', 'language', redis.call('HGET', src, 'language') or '',
      'priority', '0', 'attempts', '0', 'state', 'waiting', 'deliveries', '0', 'created', ARGV[1])
    redis.call('ZADD', ARGV[5], due, id)
    redis.call('HSET', src, 'dialler', 'accepted')
    created = created + 1
  end
end
return created
""")


class Sources:
    def __init__(self, conn: RedisConnection, jobs: JobStore, default_tz: str,
                 callbacks: Any = None, batch: int = 50):
        self.conn = conn
        self.jobs = jobs
        self.default_tz = default_tz
        self.callbacks = callbacks        # waiting.callbacks.CallbackStore, or None
        self.batch = batch

    async def customer_tz(self, number: str) -> str:
        tz = await self.conn.call(lambda r: r.hget(keys.customer(number), "timezone"))
        return tz if tz and valid_zone(tz) else self.default_tz

    async def import_followups(self, now: float) -> int:
        args = [f"{now:.3f}", self.batch, keys.outbound_followup("x")[:-1],
                keys.outbound_job("x")[:-1], keys.outbound_due("followup"),
                keys.customer("0")[:-1], self.default_tz]
        return int(await self.conn.script(_IMPORT_FOLLOWUPS, [keys.OUTBOUND_FOLLOWUPS], args))

    async def import_callbacks(self, now: float) -> int:
        if self.callbacks is None:
            return 0
        created = 0
        for _ in range(self.batch):
            request = await self.callbacks.claim_next(now)
            if request is None:
                break
            job_id = f"cb-{request.id}"
            existing = await self.jobs.get(job_id)
            if existing is not None:
                if existing.state in ("done", "failed", "cancelled"):
                    await self.finish_job(existing, existing.state, now)
                else:
                    await self.callbacks.hand_over(request.id, now)
                continue
            job = new_job(job_id, "callback", request.number, now,
                          await self.customer_tz(request.number), origin=f"callback:{request.id}",
                          queue=request.queue, language=request.language,
                          priority=request.priority)
            created += int(await self.jobs.add(job))
            # The job is durable now; its retries may take hours, so the callback leaves the
            # claim re-delivery (which is for a dialler that died before this point).
            await self.callbacks.hand_over(request.id, now)
        return created

    async def finish_job(self, job: Job, final_state: str, now: float) -> None:
        """Origin bookkeeping when a job ends (callbacks: completed / failed)."""
        kind, _, callback_id = job.origin.partition(":")
        if kind != "callback" or self.callbacks is None:
            return
        outcome = "completed" if final_state == "done" else "failed"
        await self.callbacks.complete(callback_id, outcome, now)
