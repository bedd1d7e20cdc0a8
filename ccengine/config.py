"""Configuration: embedded defaults, then one TOML file, parsed once into frozen dataclasses.

`load_config(path)` returns a `Config` or raises `ConfigError` listing *every* problem with its
location (`queues.inbound.service_level_seconds: expected an integer, got 'fast'`). Unknown keys
are errors, not ignored: a typo must not silently fall back to a default. Secrets are never read
here from the file's own values; `ami_secret()` reads the environment (or a secret file).

Sections added by later features register in `SECTIONS`; each component receives only its own
section from app.py.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, time
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from ccengine import tomlclasses

LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")
QUEUE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
CATEGORY_RE = re.compile(r"^[12349][0-9]$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = ("inquiry", "lookup", "complaint", "suggestion", "other")


class ConfigError(Exception):
    """The configuration is unusable; `problems` lists each one with its location."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


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
    state_dir: str = "state"


@dataclass(frozen=True)
class FastAgiConfig:
    bind: str = "127.0.0.1"
    port: int = 4573
    command_timeout: float = 10.0
    media_timeout: float = 120.0
    max_silence: float = 3.0
    watchdog_grace: float = 1.0
    max_session: float = 600.0

    def problems(self) -> list[str]:
        return _port(self.port) + _positive(self, "command_timeout", "media_timeout", "max_silence",
                                            "watchdog_grace", "max_session")


@dataclass(frozen=True)
class AmiConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ccengine"
    secret_env: str = "CCENGINE_AMI_SECRET"
    secret_file: str = ""
    action_timeout: float = 10.0
    ping_interval: float = 20.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0

    def problems(self) -> list[str]:
        return _port(self.port) + _positive(self, "action_timeout", "ping_interval",
                                            "reconnect_initial", "reconnect_max")


@dataclass(frozen=True)
class RedisConfig:
    url: str = ""
    timeout: float = 2.0

    def problems(self) -> list[str]:
        out = _positive(self, "timeout")
        if self.url and not self.url.startswith(("redis://", "rediss://", "unix://")):
            out.append("url: must start with redis://, rediss:// or unix://")
        return out


@dataclass(frozen=True)
class HttpConfig:
    bind: str = "127.0.0.1"
    port: int = 9480
    token_env: str = "CCENGINE_API_TOKEN"
    max_body_bytes: int = 65536

    def problems(self) -> list[str]:
        return _port(self.port) + _positive(self, "max_body_bytes")


@dataclass(frozen=True)
class RecordsConfig:
    max_calls: int = 200000
    ttl_days: int = 90

    def problems(self) -> list[str]:
        return _positive(self, "max_calls", "ttl_days")


@dataclass(frozen=True)
class CallersConfig:
    vip_priority: int = 10
    known_priority: int = 0
    blocklist_file: str = ""
    vip_file: str = ""


@dataclass(frozen=True)
class MenuOption:
    kind: str = "other"
    queue: str = "inbound"
    category: str = "90"

    def problems(self) -> list[str]:
        out = []
        if self.kind not in KINDS:
            out.append(f"kind: must be one of {', '.join(KINDS)}")
        if not CATEGORY_RE.fullmatch(self.category):
            out.append("category: two digits, the first 1, 2, 3, 4 or 9 (see SERVICE-STANDARDS.md)")
        return out


@dataclass(frozen=True)
class IvrConfig:
    menu_tries: int = 3
    digit_timeout: float = 5.0
    default_queue: str = "inbound"
    default_category: str = "90"
    language_key: str = "9"
    options: Mapping[str, MenuOption] = field(default_factory=dict)

    def problems(self) -> list[str]:
        out = _positive(self, "menu_tries", "digit_timeout")
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

    def problems(self) -> list[str]:
        out = _positive(self, "service_level_seconds", "announce_frequency")
        if not QUEUE_NAME_RE.fullmatch(self.name):
            out.append("name: lower-case letters, digits and _ only (it goes into the dialplan)")
        for key in ("open", "close"):
            try:
                time.fromisoformat(getattr(self, key))
            except ValueError:
                out.append(f"{key}: expected HH:MM, got '{getattr(self, key)}'")
        out += [f"days: '{d}' is not one of {', '.join(DAYS)}" for d in self.days if d not in DAYS]
        for d in self.closed_dates:
            try:
                date.fromisoformat(d)
            except ValueError:
                out.append(f"closed_dates: '{d}' is not a date (YYYY-MM-DD)")
        if not 0 < self.sl_target <= 1 or not 0 <= self.abandon_target <= 1:
            out.append("sl_target and abandon_target are fractions between 0 and 1")
        if self.min_available_agents < 0 or self.short_abandon_seconds < 0:
            out.append("min_available_agents and short_abandon_seconds must not be negative")
        return out


@dataclass(frozen=True)
class WaitingConfig:
    """Waiting callers and callbacks (ccengine/waiting/)."""
    offer_callback: bool = True
    min_number_digits: int = 5
    max_number_digits: int = 15
    allow_international: bool = False
    international_prefixes: tuple[str, ...] = ("00", "+")
    denied_prefixes: tuple[str, ...] = ("900", "1900", "0900")
    allowed_prefixes: tuple[str, ...] = ()
    callback_expire_hours: int = 48
    handling_time_default: float = 180.0
    handling_time_window: int = 50
    offer_timeout: float = 5.0            # seconds to wait for 1/2 after an announcement
    claim_timeout_seconds: int = 300      # a dialler's claim older than this is re-delivered
    sweep_interval: float = 30.0          # expiry, re-delivery, line sweep and pending gauge
    finished_keep_days: int = 30          # finished callbacks stay readable this long

    def problems(self) -> list[str]:
        out = _positive(self, "min_number_digits", "max_number_digits", "callback_expire_hours",
                        "handling_time_default", "handling_time_window", "offer_timeout",
                        "claim_timeout_seconds", "sweep_interval", "finished_keep_days")
        if self.max_number_digits > 32:
            out.append("max_number_digits: at most 32")
        if self.min_number_digits > self.max_number_digits:
            out.append("min_number_digits: greater than max_number_digits")
        return out


@dataclass(frozen=True)
class AgentsConfig:
    """Agents on SIP phones (ccengine/agents/)."""
    interface_template: str = "PJSIP/{phone}"
    pause_reasons: Mapping[str, str] = field(default_factory=lambda: {
        "1": "break", "2": "meal", "3": "training", "4": "meeting", "5": "after-call work"})
    max_pin_failures: int = 3
    lockout_seconds: int = 300
    no_answer_limit: int = 3
    no_answer_reason: str = "no answer"
    wrapup_seconds: int = 10
    announce_agent_number: bool = True
    whisper_wait: bool = True
    announce_queues: tuple[str, ...] = ()    # queues whose callers hear the agent number; () = all
    digit_timeout: float = 5.0               # seconds per digit of the agent number / PIN

    def problems(self) -> list[str]:
        out = _positive(self, "max_pin_failures", "lockout_seconds", "no_answer_limit",
                        "digit_timeout")
        if "{phone}" not in self.interface_template:
            out.append("interface_template: must contain {phone}")
        elif not re.fullmatch(r"[A-Za-z0-9]+/[A-Za-z0-9_@./-]*\{phone\}[A-Za-z0-9_@./-]*",
                              self.interface_template):
            out.append("interface_template: like PJSIP/{phone} (letters, digits, / @ . _ -)")
        for code, reason in self.pause_reasons.items():
            if not re.fullmatch(r"[0-9]{1,2}", code):
                out.append(f"pause_reasons.{code}: a reason code is 1 or 2 digits")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,39}", reason):
                out.append(f"pause_reasons.{code}: letters, digits, space, _ and - (max 40)")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,39}", self.no_answer_reason):
            out.append("no_answer_reason: letters, digits, space, _ and - (max 40)")
        return out


@dataclass(frozen=True)
class ComplaintsConfig:
    """Complaint tickets and escalation (ccengine/complaints/)."""
    supervisor_queue: str = "supervisor"
    deadline_hours: Mapping[str, int] = field(default_factory=lambda: {
        "agent": 24, "supervisor": 48, "manager": 72})
    sweep_interval: float = 60.0
    wait_limit_seconds: int = 120
    repeat_days: int = 30
    repeat_priority: int = 5
    complaint_queue: str = "complaint"          # where complainants wait (moved after wait_limit_seconds)
    wait_check_interval: float = 15.0           # seconds between two looks at the complaint queue
    supervisor_context: str = "ccengine-supervisor"   # Atxfer target (dialplans/extensions_ccengine.conf)
    supervisor_exten: str = "5000"
    atxfer_delay: float = 1.0                   # seconds after the escalate AGI ends before Atxfer
    followup_after_hours: float = 24.0          # follow-up call not before this long after resolving

    def problems(self) -> list[str]:
        out = _positive(self, "sweep_interval", "wait_limit_seconds", "repeat_days",
                        "wait_check_interval", "atxfer_delay")
        missing = {"agent", "supervisor", "manager"} - set(self.deadline_hours)
        out += [f"deadline_hours: level '{m}' missing" for m in sorted(missing)]
        out += [f"deadline_hours.{k}: must be greater than 0"
                for k, v in self.deadline_hours.items() if v <= 0]
        if not QUEUE_NAME_RE.fullmatch(self.complaint_queue):
            out.append("complaint_queue: lower-case letters, digits and _ only")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", self.supervisor_context):
            out.append("supervisor_context: letters, digits, _ and - only")
        if not re.fullmatch(r"[0-9A-Za-z*#]{1,20}", self.supervisor_exten):
            out.append("supervisor_exten: digits, letters, * and # only")
        if self.followup_after_hours < 0 or self.repeat_priority < 0:
            out.append("followup_after_hours and repeat_priority must not be negative")
        return out


@dataclass(frozen=True)
class OutboundConfig:
    """Outbound dialler (ccengine/outbound/)."""
    window_start: str = "09:00"
    window_end: str = "17:00"
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    closed_dates: tuple[str, ...] = ()
    max_attempts: int = 3
    retry_minutes: tuple[int, ...] = (10, 30, 120)
    max_calls_per_minute: int = 30
    per_number_interval_minutes: int = 60
    redelivery_seconds: int = 120
    originate_timeout: int = 30
    # Originate Channel: a Local channel into [ccengine-outbound], which Dial()s the trunk
    # (docs/outbound.md, "Originate shape"); the customer is called first, then queued.
    dial_template: str = "Local/{number}@ccengine-outbound/n"
    poll_interval: float = 2.0
    survey_queues: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        out = _positive(self, "max_attempts", "max_calls_per_minute", "redelivery_seconds",
                        "originate_timeout", "poll_interval")
        for key in ("window_start", "window_end"):
            try:
                time.fromisoformat(getattr(self, key))
            except ValueError:
                out.append(f"{key}: expected HH:MM")
        if not out and time.fromisoformat(self.window_start) >= time.fromisoformat(self.window_end):
            out.append("window_start: must be before window_end")
        out += [f"days: '{d}' is not one of {', '.join(DAYS)}" for d in self.days if d not in DAYS]
        for d in self.closed_dates:
            try:
                date.fromisoformat(d)
            except ValueError:
                out.append(f"closed_dates: '{d}' is not a date (YYYY-MM-DD)")
        if not self.retry_minutes or any(m <= 0 for m in self.retry_minutes):
            out.append("retry_minutes: one or more waits in minutes, each greater than 0")
        if self.per_number_interval_minutes < 0:
            out.append("per_number_interval_minutes: must not be negative")
        if self.dial_template.count("{number}") != 1 or not re.fullmatch(
                r"[A-Za-z0-9/@._-]*\{number\}[A-Za-z0-9/@._-]*", self.dial_template):
            out.append("dial_template: like Local/{number}@ccengine-outbound/n "
                       "(one {number}; letters, digits, / @ . _ -)")
        out += [f"survey_queues: '{q}' is not a queue name" for q in self.survey_queues
                if not QUEUE_NAME_RE.fullmatch(q)]
        return out


@dataclass(frozen=True)
class Config:
    company: CompanyConfig = CompanyConfig()
    engine: EngineConfig = EngineConfig()
    fastagi: FastAgiConfig = FastAgiConfig()
    ami: AmiConfig = AmiConfig()
    redis: RedisConfig = RedisConfig()
    http: HttpConfig = HttpConfig()
    records: RecordsConfig = RecordsConfig()
    callers: CallersConfig = CallersConfig()
    ivr: IvrConfig = IvrConfig()
    queues: Mapping[str, QueueConfig] = field(default_factory=dict)
    prompts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    waiting: WaitingConfig = WaitingConfig()
    agents: AgentsConfig = AgentsConfig()
    complaints: ComplaintsConfig = ComplaintsConfig()
    outbound: OutboundConfig = OutboundConfig()
    source: str = "<embedded defaults>"

    @property
    def state_dir(self) -> Path:
        return Path(self.engine.state_dir).expanduser().resolve()

    def ami_secret(self, environ: Mapping[str, str] = os.environ) -> str | None:
        """The AMI secret from the environment or the secret file; None when neither is set."""
        if self.ami.secret_file:
            # First line only, split on \n (splitlines() would also cut at \x0b or U+2028).
            first = Path(self.ami.secret_file).read_text(encoding="utf-8").split("\n", 1)[0]
            return first.strip() or None
        return environ.get(self.ami.secret_env) or None

    def api_token(self, environ: Mapping[str, str] = os.environ) -> str | None:
        return environ.get(self.http.token_env) or None


def _port(port: int) -> list[str]:
    return [] if 0 < port < 65536 else [f"port: {port} is not a TCP port"]


def _positive(obj: Any, *names: str) -> list[str]:
    return [f"{n}: must be greater than 0" for n in names if getattr(obj, n) <= 0]


def _defaults() -> dict:
    text = resources.files("ccengine").joinpath("defaults.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def parse_config(data: dict, source: str = "<dict>") -> Config:
    """Merge `data` over the embedded defaults and validate; raises ConfigError."""
    problems: list[str] = []
    merged = tomlclasses.merge(_defaults(), data)
    for name, table in merged.get("queues", {}).items():
        if isinstance(table, dict):
            table.setdefault("name", name)
            if table["name"] != name:
                problems.append(f"queues.{name}.name: must equal the table name")
    config = tomlclasses.build(Config, merged, "", problems)
    problems += _cross_checks(config)
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    return dataclasses.replace(config, source=source)


def _cross_checks(config: Config) -> list[str]:
    out = []
    queues = set(config.queues)
    if not queues:
        out.append("queues: at least one queue must be configured")
    if config.ivr.default_queue not in queues:
        out.append(f"ivr.default_queue: queue '{config.ivr.default_queue}' is not configured")
    for digit, option in config.ivr.options.items():
        if option.queue not in queues:
            out.append(f"ivr.options.{digit}.queue: queue '{option.queue}' is not configured")
    if config.complaints.supervisor_queue not in queues:
        out.append(f"complaints.supervisor_queue: queue '{config.complaints.supervisor_queue}' "
                   "is not configured")
    for name, queue in config.queues.items():
        for lang, target in queue.language_queues.items():
            if lang not in config.company.languages:
                out.append(f"queues.{name}.language_queues.{lang}: not in company.languages")
            if target not in queues:
                out.append(f"queues.{name}.language_queues.{lang}: queue '{target}' is not configured")
    for name in ("inbound",):
        if name not in queues:
            out.append(f"queues.{name}: required (the dialplan's fallback queue)")
    return out


def load_config(path: str | Path | None) -> Config:
    """Embedded defaults when path is None, else the file merged over them."""
    if path is None:
        return parse_config({}, "<embedded defaults>")
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"]) from None
    return parse_config(data, str(path))
