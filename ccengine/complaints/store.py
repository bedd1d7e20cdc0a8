"""Tickets in Redis. Every change is one WATCH/MULTI transaction: read the ticket, run the pure
transition from tickets.py, write the hash, its history entry, the indexes and (for
escalations) the notification outbox together, or retry if someone changed the ticket in
between. So two sweepers racing, or a sweeper and an API call, never escalate a level twice,
and a crash leaves either the whole change or none of it (Redis applies MULTI/EXEC atomically,
also when it replays its AOF).

Indexes (store/keys.py): `cc:complaints:all` (every id by opened), `cc:complaints:open`
(open/escalated ids, score = current deadline: the overdue gauge is a ZCOUNT), `cc:complaints:due`
(ids the sweeper still has to look at, by deadline; a ticket leaves it at the chain end),
`cc:complaints:number:{number}` (ids of a caller, by opened: repeat complainants).
"""
from __future__ import annotations

import json
from typing import Any
from collections.abc import Callable, Mapping

from redis.exceptions import WatchError
from twisted.internet.defer import Deferred

from ccengine.complaints import tickets as t
from ccengine.complaints.tickets import ComplaintTicket, TicketError, TicketNotFound
from ccengine.store import keys
from ccengine.store.base import LuaScript, RedisConnection

MAX_RETRIES = 20
# Delete the lock only if it is still ours (it may have expired and been taken by another).
_UNLOCK = LuaScript("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")
Transition = Callable[[ComplaintTicket], "t.Change"]


class TicketStore:
    def __init__(self, conn: RedisConnection, deadline_hours: Mapping[str, int]):
        self.conn = conn
        self.deadline_hours = dict(deadline_hours)

    # --- reading --------------------------------------------------------------------------
    def get(self, ticket_id: str, with_history: bool = True) -> Deferred:
        """The ticket (history included), or raises TicketNotFound."""
        ticket_id = t.check_ticket_id(ticket_id)

        async def op(r):
            data = await r.hgetall(keys.complaint(ticket_id))
            if not data:
                raise TicketNotFound(ticket_id)
            history = await r.lrange(keys.complaint_history(ticket_id), 0, -1) if with_history else []
            return ComplaintTicket.from_hash(data, [json.loads(h) for h in history])
        return self.conn.call(op)

    def list(self, state: str | None = None, limit: int = 50) -> Deferred:
        """Newest tickets first (only active ones for state='active')."""
        async def op(r):
            if state == "active":
                ids = await r.zrange(keys.COMPLAINTS_OPEN, 0, -1)
            else:
                ids = await r.zrevrange(keys.COMPLAINTS_ALL, 0, max(limit * 4, limit) - 1)
            out = []
            for ticket_id in ids:
                data = await r.hgetall(keys.complaint(ticket_id))
                if data and (state in (None, "active") or data.get("state") == state):
                    out.append(ComplaintTicket.from_hash(data))
            out.sort(key=lambda x: -x.opened)
            return out[:limit]
        return self.conn.call(op)

    def due(self, now: float, limit: int = 100) -> Deferred:
        """Ids whose current deadline has passed and that the sweeper still escalates."""
        return self.conn.call(lambda r: r.zrangebyscore(keys.COMPLAINTS_DUE, "-inf", now,
                                                        start=0, num=limit))

    def counts(self, now: float) -> Deferred:
        """(open, overdue) right now, for the gauges."""
        async def op(r):
            async with r.pipeline(transaction=False) as p:
                p.zcard(keys.COMPLAINTS_OPEN)
                p.zcount(keys.COMPLAINTS_OPEN, "-inf", f"({now}")
                total, overdue = await p.execute()
            return int(total), int(overdue)
        return self.conn.call(op)

    def recent_for_number(self, number: str, since: float) -> Deferred:
        """Tickets of a caller opened since `since`, plus any still active, newest first."""
        async def op(r):
            ids = await r.zrevrange(keys.complaints_by_number(number), 0, 49)
            out = []
            for ticket_id in ids:
                data = await r.hgetall(keys.complaint(ticket_id))
                if data:
                    ticket = ComplaintTicket.from_hash(data)
                    if ticket.active or ticket.opened >= since:
                        out.append(ticket)
            return out
        return self.conn.call(op)

    # --- writing --------------------------------------------------------------------------
    def open(self, now: float, **fields: str) -> Deferred:
        """Create a ticket at level agent; fires with the ComplaintTicket."""
        async def op(r):
            ticket_id = str(await r.incr(keys.COMPLAINT_SEQ))
            ticket, history = t.open_ticket(ticket_id, now, self.deadline_hours, **fields)
            async with r.pipeline(transaction=True) as p:
                self._write(p, ticket, history, None)
                p.zadd(keys.COMPLAINTS_ALL, {ticket_id: now})
                if ticket.number:
                    p.zadd(keys.complaints_by_number(ticket.number), {ticket_id: now})
                await p.execute()
            return ticket
        return self.conn.call(op, durable=True)

    def change(self, ticket_id: str, transition: Transition,
               notify: Callable[[ComplaintTicket, dict], dict | None] | None = None) -> Deferred:
        """Apply `transition(ticket) -> (new, history entry)` atomically; fires with
        (old, new). TicketError from the transition propagates and nothing is written.
        `notify(new, entry)` may return a notification pushed to the outbox in the same
        transaction."""
        ticket_id = t.check_ticket_id(ticket_id)
        key = keys.complaint(ticket_id)

        async def op(r):
            for _ in range(MAX_RETRIES):
                async with r.pipeline(transaction=True) as p:
                    try:
                        await p.watch(key)
                        data = await p.hgetall(key)
                        if not data:
                            raise TicketNotFound(ticket_id)
                        old = ComplaintTicket.from_hash(data)
                        new, history = transition(old)
                        p.multi()
                        self._write(p, new, history, old)
                        message = notify(new, history) if notify else None
                        if message:
                            p.rpush(keys.COMPLAINTS_OUTBOX, json.dumps(message, sort_keys=True))
                        await p.execute()
                        return old, new
                    except WatchError:
                        continue
            raise TicketError(f"ticket {ticket_id} keeps changing; try again")
        return self.conn.call(op, durable=True)

    def _write(self, p: Any, new: ComplaintTicket, history: dict, old: ComplaintTicket | None):
        p.hset(keys.complaint(new.id), mapping=new.to_hash())
        p.rpush(keys.complaint_history(new.id), json.dumps(history, sort_keys=True,
                                                           ensure_ascii=False))
        if new.active:
            p.zadd(keys.COMPLAINTS_OPEN, {new.id: new.deadline})
            if new.chain_end:
                p.zrem(keys.COMPLAINTS_DUE, new.id)
            else:
                p.zadd(keys.COMPLAINTS_DUE, {new.id: new.deadline})
        else:
            p.zrem(keys.COMPLAINTS_OPEN, new.id)
            p.zrem(keys.COMPLAINTS_DUE, new.id)

    # --- notification outbox ------------------------------------------------------------
    def outbox(self, limit: int = 100) -> Deferred:
        return self.conn.call(lambda r: r.lrange(keys.COMPLAINTS_OUTBOX, 0, limit - 1))

    def outbox_done(self, raw: str) -> Deferred:
        return self.conn.call(lambda r: r.lrem(keys.COMPLAINTS_OUTBOX, 1, raw))

    def lock_outbox(self, token: str, ttl: int) -> Deferred:
        """True when this sender may send the outbox now (one sender at a time, so two engines
        never send the same notification twice; a crashed sender's lock expires)."""
        return self.conn.call(lambda r: r.set(keys.COMPLAINTS_OUTBOX_LOCK, token, nx=True, ex=ttl))

    def unlock_outbox(self, token: str) -> Deferred:
        return self.conn.script(_UNLOCK, [keys.COMPLAINTS_OUTBOX_LOCK], [token])
