"""Customers, VIPs and the blocklist: who is calling."""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterable, Sequence

from twisted.internet.defer import Deferred

from ccengine.store import keys
from ccengine.store.base import LuaScript, RedisConnection


@dataclass(frozen=True)
class CallerProfile:
    number: str
    tier: str = "new"          # new | known | vip
    name: str = ""
    language: str = ""
    blocked: bool = False
    # Sizes of the sorted sets the lookup was asked to count (see CustomerStore.lookup).
    extra: tuple[int, ...] = field(default=(), compare=False, repr=False)


# Recognition is one Lua script: the customer hash, blocklist and VIP membership, and the sizes
# of sorted sets other features ask for (the caller's complaint index), so that they cost the
# call no round trip of their own. One EVALSHA costs redis-py about half the CPU of the same
# reads as a pipeline (bench/README.md). KEYS: customer hash, blocklist, VIP set, then the
# sorted sets to count. ARGV: the number.
_LOOKUP = LuaScript("""
local out = {redis.call('HGETALL', KEYS[1]), redis.call('SISMEMBER', KEYS[2], ARGV[1]),
             redis.call('SISMEMBER', KEYS[3], ARGV[1])}
for i = 4, #KEYS do out[i] = redis.call('ZCARD', KEYS[i]) end
return out
""")


def lookup_arguments(number: str, count: Sequence[str] = ()) -> tuple[tuple, tuple]:
    """The recognition script's keys and arguments for `number` (CustomerStore.lookup; also
    bench/servers.py, which sends them through another client)."""
    return (keys.customer(number), keys.BLOCKLIST, keys.VIP, *count), (number,)


def profile_from_reply(reply: list, number: str) -> CallerProfile:
    """The CallerProfile in the recognition script's reply."""
    flat, blocked, vip, *more = reply
    record = dict(zip(flat[::2], flat[1::2]))
    # A hash holding only a language preference does not make a caller "known".
    if vip or record.get("tier") == "vip":
        tier = "vip"
    else:
        tier = "known" if record.get("tier") == "known" or record.get("name") else "new"
    return CallerProfile(number=number, tier=tier, name=record.get("name", ""),
                         language=record.get("language", ""), blocked=bool(blocked),
                         extra=tuple(more))


NAME_LIMIT = 80


def clean_name(name: str) -> str:
    """A customer name as stored: whitespace collapsed, at most NAME_LIMIT characters."""
    return " ".join(name.split())[:NAME_LIMIT]


class CustomerStore:
    def __init__(self, conn: RedisConnection):
        self.conn = conn

    def lookup(self, number: str, count: Sequence[str] = ()) -> Deferred:
        """CallerProfile for a validated number, in one round trip (one script).

        `count`: keys (from store/keys.py) of sorted sets whose sizes the profile's `extra`
        gives, in order."""
        return self.conn.script(_LOOKUP, *lookup_arguments(number, count)).addCallback(
            profile_from_reply, number)

    def put_customer(self, number: str, name: str = "", tier: str = "known",
                     language: str = "") -> Deferred:
        """Add or update a customer (known or vip); the name is stored as agents see it:
        whitespace collapsed, at most NAME_LIMIT characters."""
        key = keys.customer(number)
        fields = {"name": clean_name(name), "tier": tier, "language": language}

        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.hset(key, mapping=fields)
                if tier == "vip":
                    p.sadd(keys.VIP, number)
                else:
                    p.srem(keys.VIP, number)
                await p.execute()
        return self.conn.call(op)

    def mark_vips(self, entries: Iterable[tuple[str, str]]) -> Deferred:
        """Make (number, name) pairs VIP customers, keeping their other fields; one round trip."""
        entries = [(keys.number_part(n), name) for n, name in entries]

        async def op(r):
            async with r.pipeline(transaction=False) as p:
                for number, name in entries:
                    fields = {"tier": "vip", **({"name": clean_name(name)} if name else {})}
                    p.hset(keys.customer(number), mapping=fields)
                    p.sadd(keys.VIP, number)
                await p.execute()
            return len(entries)
        return self.conn.call(op)

    def timezone(self, number: str) -> Deferred:
        """The customer's own time zone ('' when none is recorded)."""
        return self.conn.call(lambda r: r.hget(keys.customer(number), "timezone")).addCallback(
            lambda tz: tz or "")

    def set_language(self, number: str, language: str) -> Deferred:
        return self.conn.call(lambda r: r.hset(keys.customer(number), "language", language))

    def block(self, numbers: Iterable[str]) -> Deferred:
        numbers = [keys.number_part(n) for n in numbers]
        return self.conn.call(lambda r: r.sadd(keys.BLOCKLIST, *numbers) if numbers else _zero())

    def unblock(self, numbers: Iterable[str]) -> Deferred:
        """Fires with how many of `numbers` were blocked."""
        numbers = [keys.number_part(n) for n in numbers]
        return self.conn.call(lambda r: r.srem(keys.BLOCKLIST, *numbers) if numbers else _zero())

    def remove_customer(self, number: str) -> Deferred:
        """Forget a customer record and its VIP status (a blocked number stays blocked)."""
        key, number = keys.customer(number), keys.number_part(number)

        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.delete(key)
                p.srem(keys.VIP, number)
                await p.execute()
        return self.conn.call(op)

    def listing(self, limit: int = 10000) -> Deferred:
        """Fires with [(number, tier, name, language, blocked)] by number: every customer
        record (known and VIP, found by SCAN: an admin's command, not the call path), every VIP
        and every blocked number; at most `limit` customer records."""
        async def op(r):
            vips = set(await r.smembers(keys.VIP))
            blocked = set(await r.smembers(keys.BLOCKLIST))
            records = {}   # number -> customer hash
            async for key in r.scan_iter(match=keys.customer_pattern(), count=500):
                number = key.rsplit(":", 1)[-1]
                if len(records) >= limit:
                    break
                records[number] = await r.hgetall(key)
            out = []
            for number in sorted(set(records) | vips | blocked):
                record = records.get(number, {})
                if number in vips or record.get("tier") == "vip":
                    tier = "vip"
                elif record.get("tier") == "known" or record.get("name"):
                    tier = "known"
                else:
                    tier = "-"
                out.append((number, tier, record.get("name", ""), record.get("language", ""),
                            number in blocked))
            return out
        return self.conn.call(op)

    def lists_marker(self) -> Deferred:
        """True while Redis holds the marker of a complete caller-list load."""
        return self.conn.call(lambda r: r.exists(keys.CALLER_LISTS_LOADED)).addCallback(bool)

    def set_lists_marker(self) -> Deferred:
        return self.conn.call(lambda r: r.set(keys.CALLER_LISTS_LOADED, "1"))

    def is_blocked(self, number: str) -> Deferred:
        return self.conn.call(lambda r: r.sismember(keys.BLOCKLIST, keys.number_part(number)))


async def _zero() -> int:
    return 0
