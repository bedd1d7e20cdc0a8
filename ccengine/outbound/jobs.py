"""The durable outbound job queue in Redis (scripts and states in outbound/lua.py).

A job is one customer to call: a callback (from the waiting feature), a complaint follow-up
(from the complaints feature) or a survey (campaign CSV). Claiming moves it atomically from
the kind's due set to the processing set with a lease and a random token; only the holder of
the token may start the dial (BEGIN), and BEGIN marks the job `dialling` with the Originate's
ChannelId before anything is sent. So:
- a worker that dies between claiming and dialling: the lease ends, REDELIVER puts the job
  back, the next claim dials it once; the dead worker's token no longer works;
- a worker that dies after BEGIN: the job is never re-queued blindly; the dialler asks
  Asterisk whether the ChannelId exists before deciding (dialler.py).
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred

from ccengine.outbound import lua
from ccengine.store import keys
from ccengine.store.base import RedisConnection

KINDS = ("callback", "followup", "survey")
OUTCOMES = ("answered", "busy", "no_answer", "failed", "invalid_number", "do_not_call",
            "unknown")
JOB_PREFIX = keys.outbound_job("x")[:-1]
DUE_PREFIX = keys.outbound_due("x")[:-1]
DONE_KEEP_SECONDS = 30 * 86400


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    number: str
    due: float
    tz: str
    origin: str = ""          # callback:<id>, ticket:<id>, campaign:<name>
    queue: str = ""           # the original queue (callbacks, follow-ups) or the survey's
    language: str = ""
    priority: int = 0         # QUEUE_PRIO when the answered customer enters the queue
    attempts: int = 0
    state: str = "waiting"
    token: str = ""
    channel_id: str = ""
    deliveries: int = 0
    last_outcome: str = ""
    created: float = 0.0

    def to_fields(self) -> dict[str, str]:
        return {"id": self.id, "kind": self.kind, "number": self.number, "due": f"{self.due:.3f}",
                "tz": self.tz, "origin": self.origin, "queue": self.queue,
                "language": self.language, "priority": str(self.priority),
                "attempts": str(self.attempts), "state": self.state,
                "deliveries": str(self.deliveries), "created": f"{self.created:.3f}"}

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> Job:
        return cls(id=h["id"], kind=h["kind"], number=h["number"], due=float(h.get("due") or 0),
                   tz=h.get("tz", ""), origin=h.get("origin", ""), queue=h.get("queue", ""),
                   language=h.get("language", ""), priority=int(h.get("priority") or 0),
                   attempts=int(h.get("attempts") or 0),
                   state=h.get("state", ""), token=h.get("token", ""),
                   channel_id=h.get("channel_id", ""), deliveries=int(h.get("deliveries") or 0),
                   last_outcome=h.get("last_outcome", ""), created=float(h.get("created") or 0))


def new_job(job_id: str, kind: str, number: str, due: float, tz: str, **extra) -> Job:
    """A validated Job ready for `JobStore.add` (number and id are checked as key parts)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    keys.id_part(job_id)
    keys.number_part(number)
    return Job(id=job_id, kind=kind, number=number, due=due, tz=tz, created=due, **extra)


def add_args(job: Job) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of the ADD script (shared with the synchronous CLI)."""
    flat = [v for pair in job.to_fields().items() for v in pair]
    return [keys.outbound_job(job.id), keys.outbound_due(job.kind)], [f"{job.due:.3f}", *flat]


@dataclass(frozen=True)
class BeginResult:
    status: str               # ok | stale | do_not_call | rate | interval
    attempt: int = 0
    retry_at: float = 0.0     # rate / interval: not before this time


@dataclass
class Counts:
    waiting: dict[str, int] = field(default_factory=dict)
    outside: dict[str, int] = field(default_factory=dict)
    processing: int = 0
    inflight: int = 0


class JobStore:
    """Every method returns a Deferred."""

    def __init__(self, conn: RedisConnection):
        self.conn = conn

    def _run(self, name: str, keys_: list[str], args: list) -> Deferred:
        # A claim and a new job must survive a failover (redis.min_replicas_ack).
        return self.conn.script(getattr(lua, name), keys_, args,
                                durable=name in ("CLAIM", "ADD"))

    def add(self, job: Job) -> Deferred:
        """Store a new job; fires True, or False when a job with that id already exists
        (importing the same callback or follow-up twice creates one job)."""
        keys_, args = add_args(job)
        return self._run("ADD", keys_, args).addCallback(bool)

    def claim(self, kind: str, now: float, lease_seconds: float) -> Deferred:
        """The next due job of `kind` (none while the kind is paused), now `claimed` with a
        fresh token; fires with a Job or None."""
        token = secrets.token_hex(8)
        keys_ = [keys.outbound_due(kind), keys.OUTBOUND_PROCESSING, keys.outbound_outside(kind),
                 keys.OUTBOUND_PAUSED]
        args = [f"{now:.3f}", f"{now + lease_seconds:.3f}", token, JOB_PREFIX, kind]

        def parse(flat):
            return Job.from_hash(dict(zip(flat[::2], flat[1::2]))) if flat else None
        return self._run("CLAIM", keys_, args).addCallback(parse)

    def defer(self, job: Job, not_before: float, outside_window: bool = False) -> Deferred:
        keys_ = [keys.outbound_job(job.id), keys.outbound_due(job.kind), keys.OUTBOUND_PROCESSING,
                 keys.outbound_outside(job.kind)]
        args = [job.token, f"{not_before:.3f}", "1" if outside_window else "0", job.id]
        return self._run("DEFER", keys_, args).addCallback(bool)

    def begin(self, job: Job, channel_id: str, now: float, lease_end: float, max_per_minute: int,
              interval_seconds: float) -> Deferred:
        keys_ = [keys.outbound_job(job.id), keys.OUTBOUND_PROCESSING, keys.OUTBOUND_INFLIGHT,
                 keys.OUTBOUND_RATE, keys.DNC, keys.outbound_number_guard(job.number)]
        args = [job.token, channel_id, f"{now:.3f}", f"{lease_end:.3f}", max_per_minute,
                interval_seconds, job.id, job.number]

        def parse(reply):
            status = reply[0]
            if status == "ok":
                return BeginResult("ok", attempt=int(reply[1]))
            if status in ("rate", "interval"):
                return BeginResult(status, retry_at=float(reply[1]))
            return BeginResult(status)
        return self._run("BEGIN", keys_, args).addCallback(parse)

    def abort(self, job: Job, channel_id: str, not_before: float) -> Deferred:
        keys_ = [keys.outbound_job(job.id), keys.OUTBOUND_PROCESSING, keys.OUTBOUND_INFLIGHT,
                 keys.OUTBOUND_RATE, keys.outbound_due(job.kind),
                 keys.outbound_number_guard(job.number)]
        return self._run("ABORT", keys_, [channel_id, f"{not_before:.3f}", job.id]).addCallback(bool)

    def finish_attempt(self, job: Job, channel_id: str, outcome: str, now: float,
                       final_state: str, next_due: float, attempt: dict) -> Deferred:
        """Record the attempt; `final_state` '' = wait for `next_due`. Fires False when the
        attempt was already finished (a duplicate response)."""
        keys_ = [keys.outbound_job(job.id), keys.OUTBOUND_PROCESSING, keys.OUTBOUND_INFLIGHT,
                 keys.outbound_due(job.kind), keys.OUTBOUND_DONE, keys.outbound_attempts(job.id)]
        args = [channel_id, outcome, f"{now:.3f}", final_state, f"{next_due:.3f}",
                json.dumps(attempt, sort_keys=True), job.id, DONE_KEEP_SECONDS]
        return self._run("FINISH_ATTEMPT", keys_, args).addCallback(bool)

    def finish_undialled(self, job: Job, outcome: str, now: float, final_state: str,
                         attempt: dict) -> Deferred:
        keys_ = [keys.outbound_job(job.id), keys.OUTBOUND_PROCESSING, keys.OUTBOUND_DONE,
                 keys.outbound_attempts(job.id)]
        args = [job.token, outcome, f"{now:.3f}", final_state,
                json.dumps(attempt, sort_keys=True), job.id]
        return self._run("FINISH_UNDIALLED", keys_, args).addCallback(bool)

    def redeliver(self, now: float) -> Deferred:
        """Fires with (re-delivered count, ids of dialling jobs whose lease ended)."""
        d = self._run("REDELIVER", [keys.OUTBOUND_PROCESSING], [f"{now:.3f}", JOB_PREFIX,
                                                                 DUE_PREFIX])
        return d.addCallback(lambda reply: (int(reply[0]), list(reply[1])))

    # --- administration (ccengine outbound ...) ---------------------------------------------
    def do_not_call(self, number: str) -> Deferred:
        """True when `number` is on the do-not-call list."""
        return self.conn.call(lambda r: r.sismember(keys.DNC, keys.number_part(number)))

    def pause(self, kind: str) -> Deferred:
        """Stop claiming jobs of `kind` (calls in progress finish normally)."""
        return self.conn.call(lambda r: r.sadd(keys.OUTBOUND_PAUSED, kind))

    def resume(self, kind: str | None = None) -> Deferred:
        """Claim `kind` again (None: every kind); fires with the kinds still paused, sorted."""
        async def op(r):
            if kind is None:
                await r.delete(keys.OUTBOUND_PAUSED)
            else:
                await r.srem(keys.OUTBOUND_PAUSED, kind)
            return sorted(await r.smembers(keys.OUTBOUND_PAUSED))
        return self.conn.call(op)

    def paused(self) -> Deferred:
        return self.conn.call(lambda r: r.smembers(keys.OUTBOUND_PAUSED)).addCallback(sorted)

    def waiting(self, kinds: Iterable[str], limit: int) -> Deferred:
        """The earliest waiting jobs of `kinds`: [(due, Job)], earliest first, at most `limit`."""
        async def op(r):
            found = []
            for kind in kinds:
                for job_id, due in await r.zrange(keys.outbound_due(kind), 0, limit - 1,
                                                  withscores=True):
                    found.append((due, job_id))
            out = []
            for due, job_id in sorted(found)[:limit]:
                h = await r.hgetall(keys.outbound_job(job_id))
                if h:
                    out.append((due, Job.from_hash(h)))
            return out
        return self.conn.call(op)

    def done_count(self) -> Deferred:
        return self.conn.call(lambda r: r.zcard(keys.OUTBOUND_DONE))

    # --- reading ------------------------------------------------------------------------------
    def get(self, job_id: str) -> Deferred:
        async def op(r):
            h = await r.hgetall(keys.outbound_job(job_id))
            return Job.from_hash(h) if h else None
        return self.conn.call(op)

    def attempts(self, job_id: str) -> Deferred:
        async def op(r):
            return [json.loads(a) for a in await r.lrange(keys.outbound_attempts(job_id), 0, -1)]
        return self.conn.call(op)

    def inflight(self) -> Deferred:
        """{ChannelId: job id} of every attempt whose outcome is not known yet."""
        return self.conn.call(lambda r: r.hgetall(keys.OUTBOUND_INFLIGHT))

    def counts(self) -> Deferred:
        keys_ = [key for kind in KINDS
                 for key in (keys.outbound_due(kind), keys.outbound_outside(kind))]
        keys_ += [keys.OUTBOUND_PROCESSING, keys.OUTBOUND_INFLIGHT]
        n = len(KINDS)

        def counted(values: list) -> Counts:
            values = [int(v) for v in values]
            return Counts(waiting=dict(zip(KINDS, values[0:2 * n:2])),
                          outside=dict(zip(KINDS, values[1:2 * n:2])),
                          processing=values[2 * n], inflight=values[2 * n + 1])
        return self._run("COUNTS", keys_, []).addCallback(counted)
