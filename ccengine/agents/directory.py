"""The agent directory and agents' logins in Redis.

An agent record is a hash `cc:agent:{number}`: the PIN as a salted PBKDF2 hash (never the PIN),
the queues with their penalties, the languages the agent speaks and, for the CLI only, a name.
The name never leaves the directory: Asterisk gets the agent NUMBER as MemberName, and callers
hear the number ("agents give their number, never their name").

A login (`AgentSession`) binds one agent to one phone: `cc:agent:session:{number}` plus
`cc:agent:phone:{phone}` -> number, written together by one Lua script that refuses when
either side is already taken, so two phones racing for one agent (or two agents for one
phone) cannot both win.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from collections.abc import Mapping

from twisted.internet.defer import Deferred, fail

from ccengine.store import keys
from ccengine.store.base import LuaScript, RedisConnection, hgetall_many

AGENT_NUMBER_RE = re.compile(r"^[0-9]{2,8}$")
PIN_RE = re.compile(r"^[0-9]{4,12}$")
PHONE_RE = re.compile(r"^[A-Za-z0-9_]{1,40}$")
PIN_ITERATIONS = 120_000


class BadAgentValue(ValueError):
    """An agent number, PIN, phone or queue list that must not be stored."""


def check_number(number: str) -> str:
    if not isinstance(number, str) or not AGENT_NUMBER_RE.fullmatch(number):
        raise BadAgentValue("an agent number is 2 to 8 digits")
    return number


def hash_pin(pin: str, *, salt: bytes | None = None, iterations: int = PIN_ITERATIONS) -> str:
    """`pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`; raises BadAgentValue for a bad PIN."""
    if not isinstance(pin, str) or not PIN_RE.fullmatch(pin):
        raise BadAgentValue("a PIN is 4 to 12 digits")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    """Constant-time check of `pin` against a `hash_pin` string; False for anything malformed."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256" or not PIN_RE.fullmatch(pin):
            return False
        actual = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


@dataclass(frozen=True)
class AgentRecord:
    number: str
    queues: Mapping[str, int]           # queue -> penalty
    languages: tuple[str, ...] = ()
    name: str = ""
    pin_hash: str = ""

    def to_hash(self) -> dict[str, str]:
        return {"pin": self.pin_hash, "queues": json.dumps(dict(self.queues), sort_keys=True),
                "languages": ",".join(self.languages), "name": self.name}

    @classmethod
    def from_hash(cls, number: str, data: Mapping[str, str]) -> AgentRecord | None:
        if not data:
            return None
        return cls(number, parse_queues(data.get("queues", "{}")),
                   tuple(x for x in data.get("languages", "").split(",") if x),
                   data.get("name", ""), data.get("pin", ""))


def parse_queues(text: str) -> dict[str, int]:
    """JSON {queue: penalty} as stored; entries that are not a queue name and an int are dropped."""
    try:
        raw = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {q: p for q, p in raw.items()
            if isinstance(q, str) and re.fullmatch(r"[a-z][a-z0-9_]{0,31}", q)
            and isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 1000}


def parse_queue_spec(spec: str, known: set[str] | None = None) -> dict[str, int]:
    """CLI form `inbound:0,complaint:2` (penalty optional, default 0)."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, penalty = part.partition(":")
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
            raise BadAgentValue(f"not a queue name: {name!r:.40}")
        if known is not None and name not in known:
            raise BadAgentValue(f"queue {name!r} is not configured")
        if penalty and not re.fullmatch(r"[0-9]{1,3}", penalty):
            raise BadAgentValue(f"penalty of {name} must be 0-999")
        out[name] = int(penalty or 0)
    if not out:
        raise BadAgentValue("at least one queue")
    return out


@dataclass(frozen=True)
class AgentSession:
    number: str
    phone: str
    interface: str
    since: float
    queues: Mapping[str, int] = field(default_factory=dict)

    def to_hash(self) -> dict[str, str]:
        return {"phone": self.phone, "interface": self.interface, "since": f"{self.since:.3f}",
                "queues": json.dumps(dict(self.queues), sort_keys=True)}

    @classmethod
    def from_hash(cls, number: str, data: Mapping[str, str]) -> AgentSession | None:
        if not data or "phone" not in data:
            return None
        return cls(number, data["phone"], data.get("interface", ""),
                   float(data.get("since") or 0), parse_queues(data.get("queues", "{}")))


# KEYS: session, phone binding, logged-in set. ARGV: number, phone, then session fields.
# Returns "ok", "already" (same agent, same phone), "elsewhere" or "phone_in_use".
_CLAIM = LuaScript("""
local current = redis.call('HGET', KEYS[1], 'phone')
local holder = redis.call('GET', KEYS[2])
if current and current == ARGV[2] and holder == ARGV[1] then return 'already' end
if current then return 'elsewhere' end
if holder and holder ~= ARGV[1] then return 'phone_in_use' end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'phone', ARGV[2], 'interface', ARGV[3], 'since', ARGV[4], 'queues', ARGV[5])
redis.call('SADD', KEYS[3], ARGV[1])
return 'ok'
""")


def session_from_reply(number: str, flat: list) -> AgentSession | None:
    """An agent's session from a script's reply: the number read from the phone binding and the
    session hash as a flat field/value list. A stored number that is no agent number raises
    keys.BadKeyPart."""
    keys.agent_session(number)
    return AgentSession.from_hash(number, dict(zip(flat[::2], flat[1::2])))


# KEYS: the phone binding. ARGV: the session keys' prefix (keys.AGENT_SESSION_PREFIX). Returns
# nil, or {number, the session hash as a flat list}. The session key is built here from the
# number read (the engine's Redis is one instance or a Sentinel group, never a Cluster).
# One round trip on the store's lane for what took one or two through redis-py (a login, the
# connect hook, an escalation; the state tracker reads the agent's states with it in
# agents/state.py's script).
_SESSION_ON_PHONE = LuaScript("""
local number = redis.call('GET', KEYS[1])
if not number then return false end
return {number, redis.call('HGETALL', ARGV[1] .. number)}
""")


# KEYS: agent lock, agent attempts, phone attempts. ARGV: limit, phone limit, window (s).
_PIN_ATTEMPT = LuaScript("""
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then return {'locked', ttl} end
local phone = redis.call('INCR', KEYS[3])
if phone == 1 then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
if phone > tonumber(ARGV[2]) then return {'phone', 0} end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
if n > tonumber(ARGV[1]) then return {'locked', redis.call('TTL', KEYS[2])} end
return {'ok', n}
""")


class AgentDirectory:
    """Async access (Deferreds) to agent records, logins and the PIN lockout."""

    def __init__(self, conn: RedisConnection):
        self.conn = conn

    def get(self, number: str) -> Deferred:
        async def op(r):
            return AgentRecord.from_hash(number, await r.hgetall(keys.agent(number)))
        return self.conn.call(op)

    def put(self, record: AgentRecord) -> Deferred:
        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.hset(keys.agent(record.number), mapping=record.to_hash())
                p.sadd(keys.AGENTS, record.number)
                await p.execute()
        return self.conn.call(op)

    def numbers(self) -> Deferred:
        return self.conn.call(lambda r: r.smembers(keys.AGENTS))

    # --- administration (ccengine agents ...) ----------------------------------------------
    def add(self, record: AgentRecord) -> Deferred:
        """Store a new agent; fires False (and changes nothing) when the number exists."""
        async def op(r):
            if await r.exists(keys.agent(record.number)):
                return False
            async with r.pipeline(transaction=True) as p:
                p.hset(keys.agent(record.number), mapping=record.to_hash())
                p.sadd(keys.AGENTS, record.number)
                await p.execute()
            return True
        return self.conn.call(op)

    def set_pin(self, number: str, pin_hash: str) -> Deferred:
        """A new PIN hash, and the agent unlocked; fires False when there is no such agent."""
        async def op(r):
            if not await r.exists(keys.agent(number)):
                return False
            async with r.pipeline(transaction=True) as p:
                p.hset(keys.agent(number), "pin", pin_hash)
                p.delete(keys.agent_lock(number), keys.agent_pin_failures(number))
                await p.execute()
            return True
        return self.conn.call(op)

    def set_queues(self, number: str, queues: Mapping[str, int]) -> Deferred:
        """New queues and penalties (used at the next login); fires None when there is no such
        agent, else whether the agent is logged in now."""
        async def op(r):
            if not await r.exists(keys.agent(number)):
                return None
            await r.hset(keys.agent(number), "queues", json.dumps(dict(queues), sort_keys=True))
            return bool(await r.sismember(keys.AGENTS_LOGGED_IN, number))
        return self.conn.call(op)

    def remove(self, number: str) -> Deferred:
        """Forget an agent who is logged out; fires removed / not_found / logged_in."""
        async def op(r):
            if await r.sismember(keys.AGENTS_LOGGED_IN, number):
                return "logged_in"
            async with r.pipeline(transaction=True) as p:
                p.delete(keys.agent(number))
                p.srem(keys.AGENTS, number)
                p.delete(keys.agent_lock(number), keys.agent_pin_failures(number))
                removed, *_ = await p.execute()
            return "removed" if removed else "not_found"
        return self.conn.call(op)

    def allow_pause(self, number: str, seconds: int) -> Deferred:
        """Let the agent's next pause pass the staffing guard within `seconds`."""
        return self.conn.call(lambda r: r.set(keys.agent_pause_override(number), "1", ex=seconds))

    def records(self) -> Deferred:
        """Every agent record and whether it is logged in: [(AgentRecord, bool)], by number."""
        async def op(r):
            logged_in = await r.smembers(keys.AGENTS_LOGGED_IN)
            out = []
            for number in sorted(await r.smembers(keys.AGENTS)):
                record = AgentRecord.from_hash(number, await r.hgetall(keys.agent(number)))
                if record is not None:
                    out.append((record, number in logged_in))
            return out
        return self.conn.call(op)

    # --- sessions -------------------------------------------------------------------------
    def claim(self, session: AgentSession) -> Deferred:
        """Bind agent and phone atomically; fires with ok / already / elsewhere / phone_in_use."""
        s = session.to_hash()
        return self.conn.script(
            _CLAIM, [keys.agent_session(session.number), keys.agent_phone(session.phone),
                     keys.AGENTS_LOGGED_IN],
            [session.number, session.phone, s["interface"], s["since"], s["queues"]],
            durable=True)

    def release(self, session: AgentSession) -> Deferred:
        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.delete(keys.agent_session(session.number), keys.agent_state(session.number),
                         keys.agent_no_answer(session.number))
                p.srem(keys.AGENTS_LOGGED_IN, session.number)
                await p.execute()
            # Only drop the phone binding if it is still ours.
            if await r.get(keys.agent_phone(session.phone)) == session.number:
                await r.delete(keys.agent_phone(session.phone))
        return self.conn.call(op)

    def session(self, number: str) -> Deferred:
        async def op(r):
            return AgentSession.from_hash(number, await r.hgetall(keys.agent_session(number)))
        return self.conn.call(op)

    def session_on_phone(self, phone: str) -> Deferred:
        """The session of the agent logged in on `phone`, or None."""
        try:
            key = keys.agent_phone(phone)
        except keys.BadKeyPart:
            return fail()

        def session(reply) -> AgentSession | None:
            return session_from_reply(reply[0], reply[1]) if reply and reply[0] else None
        return self.conn.script(_SESSION_ON_PHONE, (key,), (keys.AGENT_SESSION_PREFIX,)
                                ).addCallback(session)

    def sessions(self) -> Deferred:
        """Every current login, {number: AgentSession}: the logged-in set, then every session
        hash in one pipelined round trip (a resync with 2,000 agents made 2,000 sequential
        HGETALLs, longer than redis.timeout under load, and the resync failed)."""
        async def op(r):
            numbers = sorted(await r.smembers(keys.AGENTS_LOGGED_IN))
            hashes = await hgetall_many(r, [keys.agent_session(n) for n in numbers])
            out = {}
            for number, data in zip(numbers, hashes):
                session = AgentSession.from_hash(number, data)
                if session is not None:
                    out[number] = session
            return out
        return self.conn.call(op)

    # --- PIN lockout ----------------------------------------------------------------------
    def lock_remaining(self, number: str) -> Deferred:
        """Seconds the agent stays locked (0 when not locked)."""
        async def op(r):
            ttl = await r.ttl(keys.agent_lock(number))
            return max(int(ttl), 0)
        return self.conn.call(op)

    def pin_attempt(self, number: str, phone: str, limit: int, phone_limit: int,
                    window: int) -> Deferred:
        """Reserve one PIN attempt, atomically, BEFORE the PIN is checked: fires with
        ("ok", n) where n is this agent's attempt number in the window, ("locked", seconds
        left) when the agent is locked or this attempt is past `limit`, or ("phone", 0) when
        the phone made more than `phone_limit` attempts in the window (any agent numbers).
        Simultaneous sessions cannot all pass the check before one failure is counted."""
        return self.conn.script(
            _PIN_ATTEMPT, [keys.agent_lock(number), keys.agent_pin_failures(number),
                           keys.phone_pin_attempts(phone)],
            [limit, phone_limit, window]).addCallback(lambda reply: (reply[0], int(reply[1])))

    def pin_failed(self, number: str, attempt: int, limit: int, lockout_seconds: int) -> Deferred:
        """After a wrong PIN on reserved attempt `attempt`: fires True when it locks the agent."""
        if attempt < limit:
            return self.conn.call(lambda r: r.ping()).addCallback(lambda _: False)

        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.set(keys.agent_lock(number), "1", ex=lockout_seconds)
                p.delete(keys.agent_pin_failures(number))
                await p.execute()
            return True
        return self.conn.call(op)

    def pin_ok(self, number: str, phone: str) -> Deferred:
        """A right PIN: the agent's count starts again, and the phone's attempt is given back."""
        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.delete(keys.agent_pin_failures(number))
                p.decr(keys.phone_pin_attempts(phone))
                await p.execute()
        return self.conn.call(op)

    def take_pause_override(self, number: str) -> Deferred:
        """True (once) when a supervisor allowed this agent's next pause."""
        return self.conn.call(lambda r: r.getdel(keys.agent_pause_override(number)))
