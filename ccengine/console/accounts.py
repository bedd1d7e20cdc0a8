"""Console accounts, sessions and the login limit, in Redis (keys in store/keys.py).

- Roles: `supervisor` (watches and acts) and `operations` (watches, changes nothing).
- Passwords are hashed with argon2id (argon2-cffi's PasswordHasher and its defaults); hashing
  and checking take tens of milliseconds, so the engine runs them in a thread.
- A session is a random 32-byte cookie; Redis keeps only its SHA-256, with the user and the
  session's CSRF token, for `session_hours`.
- Logins: after `max_failures` failed attempts for one user name, or 4x that from one client
  address, within `failure_window` seconds, further attempts are refused without checking the
  password, with the same answer as a wrong password (no hint which names exist).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet.defer import Deferred

from ccengine.store import keys
from ccengine.store.base import RedisConnection

ROLES = ("supervisor", "operations")
USER_RE = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
PHONE_RE = re.compile(r"^[A-Za-z0-9_]{1,40}$")
MIN_PASSWORD = 10
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to check against when the user does not exist, so both cases take the same time.
    Made at the first such check (in the login thread), not at import: argon2's defaults take
    64 MiB and a few hundred ms, which every engine start paid even with the console unused
    (bench/memory.py saw the start-up peak at 112 MiB against 50 MiB idle)."""
    return _HASHER.hash("not a password of anybody")


class BadAccount(ValueError):
    """A user name, role, phone or password the console refuses (message for the user)."""


def check_user(name: str) -> str:
    if not USER_RE.fullmatch(name or ""):
        raise BadAccount("user name: a lower-case letter, then up to 31 of a-z 0-9 . _ -")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadAccount(f"role: one of {', '.join(ROLES)}")
    return role


def check_phone(phone: str) -> str:
    if phone and not PHONE_RE.fullmatch(phone):
        raise BadAccount("phone: the PJSIP endpoint name (letters, digits, _)")
    return phone


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise BadAccount(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > 256:
        raise BadAccount("password: at most 256 characters")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_password(password))


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches `stored` (constant work also when `stored` is None)."""
    try:
        return _HASHER.verify(stored or _dummy_hash(), password[:256]) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    phone: str = ""        # the supervisor's own phone (endpoint) for listen / whisper / barge
    display: str = ""

    @property
    def can_act(self) -> bool:
        return self.role == "supervisor"


@dataclass(frozen=True)
class Session:
    account: Account
    csrf: str


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest()[:64]


class AccountStore:
    def __init__(self, conn: RedisConnection, session_hours: float = 12.0,
                 max_failures: int = 5, failure_window: int = 900):
        self.conn = conn
        self.session_seconds = int(session_hours * 3600)
        self.max_failures = max_failures
        self.failure_window = failure_window

    # --- accounts (CLI) -------------------------------------------------------------------
    def add(self, account: Account, password_hash: str) -> Deferred:
        key = keys.console_user(check_user(account.name))
        check_role(account.role)
        check_phone(account.phone)

        async def op(r):
            if not await r.hsetnx(key, "role", account.role):
                return False
            await r.hset(key, mapping={"password": password_hash, "phone": account.phone,
                                       "display": account.display[:80]})
            await r.sadd(keys.CONSOLE_USERS, account.name)
            return True
        return self.conn.call(op)

    def set_password(self, name: str, password_hash: str) -> Deferred:
        key = keys.console_user(check_user(name))

        async def op(r):
            if not await r.exists(key):
                return False
            await r.hset(key, "password", password_hash)
            return True
        return self.conn.call(op)

    def remove(self, name: str) -> Deferred:
        key = keys.console_user(check_user(name))

        async def op(r):
            removed = await r.delete(key)
            await r.srem(keys.CONSOLE_USERS, name)
            return bool(removed)
        return self.conn.call(op)

    def get(self, name: str) -> Deferred:
        """(Account, password hash) or None."""
        return self.conn.call(lambda r: _read_account(r, name))

    def names(self) -> Deferred:
        return self.conn.call(lambda r: r.smembers(keys.CONSOLE_USERS))

    # --- login limit ----------------------------------------------------------------------
    def login_allowed(self, name: str, address: str) -> Deferred:
        async def op(r):
            user, client = await r.mget(self._failure_keys(name, address))
            return int(user or 0) < self.max_failures and \
                int(client or 0) < 4 * self.max_failures
        return self.conn.call(op)

    def login_failed(self, name: str, address: str) -> Deferred:
        async def op(r):
            async with r.pipeline(transaction=True) as p:
                for key in self._failure_keys(name, address):
                    p.incr(key)
                    p.expire(key, self.failure_window, nx=True)
                await p.execute()
        return self.conn.call(op)

    def login_ok(self, name: str) -> Deferred:
        return self.conn.call(lambda r: r.delete(self._failure_keys(name, "")[0]))

    def _failure_keys(self, name: str, address: str) -> list[str]:
        user = name if USER_RE.fullmatch(name or "") else "invalid-name"
        client = "ip-" + re.sub(r"[^A-Za-z0-9.-]", "-", address or "unknown")[:60]
        return [keys.console_login_failures("u-" + user), keys.console_login_failures(client)]

    # --- sessions -------------------------------------------------------------------------
    def open_session(self, account: Account, now: float) -> Deferred:
        """A new session; fires with (cookie, csrf token)."""
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        key = keys.console_session(_digest(cookie))

        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.hset(key, mapping={"user": account.name, "csrf": csrf, "created": f"{now:.0f}"})
                p.expire(key, self.session_seconds)
                await p.execute()
            return cookie, csrf
        return self.conn.call(op)

    def session(self, cookie: str | None) -> Deferred:
        """The live Session of a cookie, or None (unknown, expired, account removed)."""
        async def op(r):
            if not cookie or len(cookie) > 100:
                return None
            data = await r.hgetall(keys.console_session(_digest(cookie)))
            if not data:
                return None
            found = await _read_account(r, data.get("user", ""))
            if found is None:
                return None
            return Session(found[0], data.get("csrf", ""))
        return self.conn.call(op)

    def close_session(self, cookie: str | None) -> Deferred:
        if not cookie or len(cookie) > 100:
            return self.conn.call(lambda r: r.ping())
        return self.conn.call(lambda r: r.delete(keys.console_session(_digest(cookie))))


async def _read_account(r: Any, name: str) -> tuple[Account, str | None] | None:
    if not USER_RE.fullmatch(name or ""):
        return None
    data = await r.hgetall(keys.console_user(name))
    if not data or data.get("role") not in ROLES:
        return None
    return Account(name, data["role"], data.get("phone", ""), data.get("display", "")), \
        data.get("password")


def csrf_matches(session: Session, token: Any) -> bool:
    return isinstance(token, str) and bool(session.csrf) and \
        hmac.compare_digest(token.encode(), session.csrf.encode())
