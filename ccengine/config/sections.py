"""The core sections of the configuration (company, engine, fastagi, ami, redis, http,
records, console, recordings, callers, ivr, queues), each a frozen dataclass with its own
`problems()`. Loading, merging and the checks across sections are in config/__init__.py; the
feature sections in features.py."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path

from ccengine.agi.settings import AgiSettings
from ccengine.config.checks import (CATEGORY_RE, DAYS, KIND_BY_DIGIT, KINDS, LANGUAGE_RE,
                                    QUEUE_NAME_RE, calendar, port as _port,
                                    positive as _positive)


@dataclass(frozen=True)
class CompanyConfig:
    name: str = "Example Hotline"
    default_language: str = "zh"
    languages: tuple[str, ...] = ("zh", "en")
    timezone: str = "Asia/Shanghai"
    language_by_number: Mapping[str, str] = field(default_factory=dict)  # called number -> language

    def problems(self) -> list[str]:
        out = [f"languages: '{lang}' is not a language code" for lang in self.languages
               if not LANGUAGE_RE.fullmatch(lang)]
        out += [f"language_by_number.{n}: '{lang}' is not in languages"
                for n, lang in self.language_by_number.items() if lang not in self.languages]
        if self.default_language not in self.languages:
            out.append(f"default_language: '{self.default_language}' is not in languages")
        if not self.name.strip() or len(self.name) > 80:
            out.append("name: must be 1-80 characters")
        try:
            from zoneinfo import ZoneInfo
            ZoneInfo(self.timezone)
        except Exception:  # zoneinfo raises several types for a bad key
            out.append(f"timezone: unknown time zone '{self.timezone}'")
        return out


@dataclass(frozen=True)
class EngineConfig:
    """`id`: this engine's name among several (logs, the AMI lease); empty: host-pid."""
    state_dir: str = "state"
    id: str = ""

    def problems(self) -> list[str]:
        if self.id and not re.fullmatch(r"[A-Za-z0-9._-]{1,40}", self.id):
            return ["id: letters, digits, . _ - (at most 40)"]
        return []

    @property
    def name(self) -> str:
        import os
        import socket
        return self.id or f"{socket.gethostname()[:30]}-{os.getpid()}"


@dataclass(frozen=True)
class FastAgiConfig(AgiSettings):
    """The server's timings (agi/settings.py, defaults defined there once) and its address."""
    bind: str = "127.0.0.1"
    port: int = 4573

    def problems(self) -> list[str]:
        return _port(self.port) + _positive(self, "command_timeout", "media_timeout", "max_silence",
                                            "watchdog_grace", "max_session", "env_timeout",
                                            "stop_grace", "max_connections",
                                            "max_connections_per_source")


SERVER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
# An agent phone as [[ami.servers]] `phones` lists it: a name ("1001", "sup-3") or a numeric
# range of names ("1000-1999", both ends the same length).
PHONE_RE = re.compile(r"[A-Za-z0-9._-]{1,40}")
PHONE_RANGE_RE = re.compile(r"([0-9]{1,12})-([0-9]{1,12})")


@dataclass(frozen=True)
class AmiServerConfig:
    """One Asterisk server of several (`[[ami.servers]]`, docs/scaling.md). `name` is its
    label in metrics and logs and the key of its events lease; `phones` are the agent phones
    registered to it, whose queue members live there."""
    name: str = ""
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ccengine"
    secret_env: str = "CCENGINE_AMI_SECRET"
    secret_file: str = ""
    phones: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        out = _port(self.port)
        if not SERVER_NAME_RE.fullmatch(self.name):
            out.append(f"name: {self.name!r}: letters, digits, . _ - (at most 32)")
        for phone in self.phones:
            span = PHONE_RANGE_RE.fullmatch(phone)
            if span and (len(span[1]) != len(span[2]) or int(span[1]) > int(span[2])):
                out.append(f"phones: {phone!r}: a range needs two numbers of the same length, "
                           "the first not above the second")
            elif not span and not PHONE_RE.fullmatch(phone):
                out.append(f"phones: {phone!r} is neither a phone name nor a range like 1000-1999")
        return out

    def secret(self, environ: Mapping[str, str]) -> str | None:
        """The AMI secret from the environment or the secret file; None when neither is set."""
        if self.secret_file:
            # First line only, split on \n (splitlines() would also cut at \x0b or U+2028).
            raw = Path(self.secret_file).read_bytes().decode("utf-8")   # no newline translation
            first = raw.split("\n", 1)[0]
            return first.strip() or None
        return environ.get(self.secret_env) or None


@dataclass(frozen=True)
class AmiConfig:
    enabled: bool = True
    # One Asterisk: name, host, port, username, secret_env / secret_file here. Several:
    # `[[ami.servers]]` tables (AmiServerConfig), and these five are not used.
    name: str = "asterisk"
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ccengine"
    secret_env: str = "CCENGINE_AMI_SECRET"
    secret_file: str = ""
    servers: tuple[AmiServerConfig, ...] = ()
    action_timeout: float = 10.0
    ping_interval: float = 20.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    # Several engines on one Redis and these Asterisk servers: one follows each server's
    # events for state and metrics at a time (a lease in Redis, ami/owner.py).
    shared: bool = False

    def server_list(self) -> tuple[AmiServerConfig, ...]:
        """The Asterisk servers, the first one the default (outbound calls, unknown phones)."""
        if self.servers:
            return self.servers
        return (AmiServerConfig(self.name, self.host, self.port, self.username,
                                self.secret_env, self.secret_file),)

    def problems(self) -> list[str]:
        out = _port(self.port) + _positive(self, "action_timeout", "ping_interval",
                                           "reconnect_initial", "reconnect_max")
        if not SERVER_NAME_RE.fullmatch(self.name):
            out.append(f"name: {self.name!r}: letters, digits, . _ - (at most 32)")
        names = [s.name for s in self.servers]
        out += [f"servers: the name {n!r} is given twice" for n in sorted(set(names))
                if names.count(n) > 1]
        listed = [(s.name, p) for s in self.servers for p in s.phones]
        for i, (name, pattern) in enumerate(listed):
            for other, other_pattern in listed[i + 1:]:
                if other != name and phones_overlap(pattern, other_pattern):
                    out.append(f"servers: phones {pattern!r} of {name!r} and {other_pattern!r} "
                               f"of {other!r} overlap: a phone is registered to one server")
        return out


def phone_matches(phone: str, pattern: str) -> bool:
    """Whether `phone` is the name `pattern` or within its range ("1000-1999")."""
    span = PHONE_RANGE_RE.fullmatch(pattern)
    if span is None:
        return phone == pattern
    return (phone.isdigit() and len(phone) == len(span[1])
            and int(span[1]) <= int(phone) <= int(span[2]))


def phones_overlap(a: str, b: str) -> bool:
    ra, rb = PHONE_RANGE_RE.fullmatch(a), PHONE_RANGE_RE.fullmatch(b)
    if ra and rb:
        return (len(ra[1]) == len(rb[1]) and int(ra[1]) <= int(rb[2])
                and int(rb[1]) <= int(ra[2]))
    if ra:
        return phone_matches(b, a)
    return phone_matches(a, b)


@dataclass(frozen=True)
class RedisConfig:
    url: str = ""
    timeout: float = 2.0
    # Redis Sentinel (docs/scaling.md): the sentinels as "host:port" and the master's name.
    sentinels: tuple[str, ...] = ()
    service: str = ""
    password_env: str = ""            # the Redis password from this environment variable
    min_replicas_ack: int = 0         # acknowledged writes wait for this many replicas
    replica_ack_timeout_ms: int = 500
    # TLS (docs/scaling.md): a `rediss://` url, or `tls = true` with sentinels (the sentinels and
    # the master both over TLS); the servers' certificates are checked against tls_ca_file
    # (empty: the system's CAs).
    tls: bool = False
    tls_ca_file: str = ""

    def problems(self) -> list[str]:
        out = _positive(self, "timeout", "replica_ack_timeout_ms")
        for entry in self.sentinels:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                out.append(f"sentinels: '{entry}' is not host:port")
        if self.sentinels and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", self.service):
            out.append("service: the Sentinel master name is required with sentinels")
        if self.sentinels and self.url:
            out.append("url: leave it empty with sentinels (the sentinels name the master)")
        if self.min_replicas_ack < 0:
            out.append("min_replicas_ack: must not be negative")
        if self.tls and not self.sentinels:
            out.append("tls: for sentinels only; with a url, write rediss://")
        if self.tls_ca_file and not (self.tls or self.url.startswith("rediss://")):
            out.append("tls_ca_file: set with a rediss:// url or tls = true")
        if self.tls_ca_file and not os.path.isfile(self.tls_ca_file):
            out.append(f"tls_ca_file: no such file {self.tls_ca_file!r}")
        if self.url and not self.url.startswith(("redis://", "rediss://", "unix://")):
            out.append("url: must start with redis://, rediss:// or unix://")
        elif self.url.startswith(("redis://", "rediss://")):
            from urllib.parse import urlparse
            try:
                parsed = urlparse(self.url)
                url_port, url_host = parsed.port, parsed.hostname
            except ValueError as exc:
                out.append(f"url: {exc}")
            else:
                if not url_host:
                    out.append("url: names no host")
                if url_port is not None and not 0 < url_port < 65536:
                    out.append("url: port must be 1-65535")
        return out


@dataclass(frozen=True)
class HttpConfig:
    bind: str = "127.0.0.1"
    port: int = 9480
    token_env: str = "CCENGINE_API_TOKEN"
    max_body_bytes: int = 65536
    max_connections: int = 256        # HTTP connections at once (console pages hold one each)
    header_timeout: float = 10.0      # a request's headers must be complete within this
    metrics_cache_seconds: float = 1.0   # /metrics is rendered at most this often

    def problems(self) -> list[str]:
        return _port(self.port) + _positive(self, "max_body_bytes", "max_connections",
                                            "header_timeout") + (
            [] if self.metrics_cache_seconds >= 0 else ["metrics_cache_seconds: not negative"])


@dataclass(frozen=True)
class RecordsConfig:
    max_calls: int = 200000
    ttl_days: int = 90

    def problems(self) -> list[str]:
        return _positive(self, "max_calls", "ttl_days")


@dataclass(frozen=True)
class ConsoleConfig:
    """The supervisor console (docs/console.md)."""
    enabled: bool = True
    session_hours: float = 12.0
    login_max_failures: int = 5          # per user name (4x per client address) ...
    login_failure_window: int = 900      # ... within this many seconds
    secure_cookies: bool = False         # force Secure cookies (set when a TLS proxy is in front)
    push_delay: float = 0.25             # seconds changes are gathered before the page is told
    audit_keep: int = 2000               # audit entries kept in Redis

    def problems(self) -> list[str]:
        out = _positive(self, "session_hours", "login_max_failures", "login_failure_window",
                        "audit_keep")
        if not 0 <= self.push_delay <= 0.9:
            out.append("push_delay: between 0 and 0.9 seconds (the page follows within 1 s)")
        return out


@dataclass(frozen=True)
class RecordingsConfig:
    """Call recordings (docs/console.md): where Asterisk writes them, how long they stay."""
    dir: str = "/var/spool/asterisk/monitor/ccengine"   # = CCENGINE_RECORDINGS in the dialplan
    retention_days: int = 90
    sweep_interval: float = 3600.0

    def problems(self) -> list[str]:
        out = _positive(self, "retention_days", "sweep_interval")
        if not self.dir.startswith("/") or ".." in self.dir.split("/") or \
                not re.fullmatch(r"[A-Za-z0-9_./-]{1,200}", self.dir):
            out.append("dir: an absolute path of letters, digits and _ . / - without '..'")
        return out


@dataclass(frozen=True)
class CallersConfig:
    vip_priority: int = 10
    known_priority: int = 0
    blocklist_file: str = ""
    vip_file: str = ""
    # While Redis cannot answer, refuse callers on the blocklist FILE (kept in memory); numbers
    # blocked only with `ccengine callers block` are in Redis alone and get through then.
    block_from_file_when_redis_down: bool = True


@dataclass(frozen=True)
class MenuOption:
    # Optional: the category's first digit is the kind (SERVICE-STANDARDS.md); when given, the
    # two must agree, so a key meant as a complaint cannot be counted as something else.
    kind: str = ""
    queue: str = "inbound"
    category: str = "90"

    def problems(self) -> list[str]:
        out = []
        if self.kind and self.kind not in KINDS:
            out.append(f"kind: must be one of {', '.join(KINDS)}")
        if not CATEGORY_RE.fullmatch(self.category):
            out.append("category: two digits, the first 1, 2, 3, 4 or 9 (see SERVICE-STANDARDS.md)")
        elif self.kind in KINDS and KIND_BY_DIGIT[self.category[0]] != self.kind:
            # The category's first digit is the kind; a menu key whose two disagree would be
            # counted and routed as the category's kind (a "complaint" with 30 as an inquiry).
            digit = next(d for d, k in KIND_BY_DIGIT.items() if k == self.kind)
            out.append(f"kind '{self.kind}' and category '{self.category}' disagree: the first "
                       f"digit of the category is the kind ({self.category[0]} = "
                       f"{KIND_BY_DIGIT[self.category[0]]}); use a category {digit}x for "
                       f"{self.kind}")
        return out


@dataclass(frozen=True)
class IvrConfig:
    menu_tries: int = 3
    # Seconds to wait for a key after the menu prompt. 4 s lets a caller who presses nothing
    # hear the menu twice within the default budget (greeting 3 s + 2 x (menu 8.6 s + 4 s)).
    digit_timeout: float = 4.0
    # A caller who presses nothing (or only wrong keys) is in the default queue at most this
    # many seconds after answer: a menu play is retried only if it would end within it.
    no_input_budget: float = 30.0
    default_queue: str = "inbound"
    default_category: str = "90"
    language_key: str = "9"
    options: Mapping[str, MenuOption] = field(default_factory=dict)

    def problems(self) -> list[str]:
        out = _positive(self, "menu_tries", "digit_timeout", "no_input_budget")
        for digit in self.options:
            if not re.fullmatch(r"[0-9*#]", digit):
                out.append(f"options.{digit}: a menu key is one digit, * or #")
        if self.language_key in self.options:
            out.append(f"language_key: '{self.language_key}' is also a menu option")
        if not CATEGORY_RE.fullmatch(self.default_category):
            out.append("default_category: two digits, the first 1, 2, 3, 4 or 9")
        return out


@dataclass(frozen=True)
class QueueConfig:
    name: str = ""
    service_level_seconds: int = 15
    short_abandon_seconds: int = 5
    sl_target: float = 0.8
    abandon_target: float = 0.05
    announce_frequency: int = 30
    min_available_agents: int = 1
    open: str = "08:00"
    close: str = "21:00"
    days: tuple[str, ...] = DAYS
    closed_dates: tuple[str, ...] = ()
    # language -> queue for callers of that language (agents who speak it), used while it has
    # an available agent; docs/prompts.md, "Language and routing".
    language_queues: Mapping[str, str] = field(default_factory=dict)
    # Record this queue's calls (docs/console.md, "Call recording"): the caller hears the
    # recording notice before joining and the agent's side runs MixMonitor once answered.
    record: bool = False

    def problems(self) -> list[str]:
        out = _positive(self, "service_level_seconds", "announce_frequency")
        if not QUEUE_NAME_RE.fullmatch(self.name):
            out.append("name: lower-case letters, digits and _ only (it goes into the dialplan)")
        for key in ("open", "close"):
            try:
                time.fromisoformat(getattr(self, key))
            except ValueError:
                out.append(f"{key}: expected HH:MM, got '{getattr(self, key)}'")
        out += calendar(self.days, self.closed_dates)
        if not 0 < self.sl_target <= 1 or not 0 <= self.abandon_target <= 1:
            out.append("sl_target and abandon_target are fractions between 0 and 1")
        if self.min_available_agents < 0 or self.short_abandon_seconds < 0:
            out.append("min_available_agents and short_abandon_seconds must not be negative")
        return out
