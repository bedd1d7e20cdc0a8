"""Configuration: embedded defaults, then one TOML file, parsed once into frozen dataclasses.

`load_config(path)` returns a `Config` or raises `ConfigError` listing *every* problem with its
location (`queues.inbound.service_level_seconds: expected an integer, got 'fast'`). Unknown keys
are errors, not ignored: a typo must not silently fall back to a default. Secrets are never read
here from the file's own values; `ami_secret()` reads the environment (or a secret file).

Here: the whole Config, loading, merging and the checks across sections. The core sections
are in sections.py, the feature sections (waiting, agents, complaints, outbound) in
features.py, the checks several sections share in checks.py, the TOML-to-dataclass conversion
in tomlclasses.py and the commented defaults in defaults.toml. Each component receives only its
own section from app.py.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from collections.abc import Mapping

from ccengine.config import tomlclasses
from ccengine.config.features import (AgentsConfig, ComplaintsConfig, OutboundConfig,
                                      WaitingConfig)
from ccengine.config.sections import (AmiConfig, AmiServerConfig, CallersConfig, CompanyConfig, ConsoleConfig,
                                      EngineConfig, FastAgiConfig, HttpConfig, IvrConfig,
                                      MenuOption, QueueConfig, RecordingsConfig, RecordsConfig,
                                      RedisConfig)

__all__ = ["AgentsConfig", "AmiConfig", "AmiServerConfig", "CallersConfig", "CompanyConfig", "ComplaintsConfig",
           "Config", "ConfigError", "ConsoleConfig", "EngineConfig", "FastAgiConfig",
           "HttpConfig", "IvrConfig", "MenuOption", "OutboundConfig", "QueueConfig",
           "RecordingsConfig", "RecordsConfig", "RedisConfig", "WaitingConfig", "load_config",
           "parse_config"]

class ConfigError(Exception):
    """The configuration is unusable; `problems` lists each one with its location."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


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
    console: ConsoleConfig = ConsoleConfig()
    recordings: RecordingsConfig = RecordingsConfig()
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
        """The first (or only) Asterisk server's AMI secret; None when it is not set."""
        return self.ami.server_list()[0].secret(environ)

    def api_token(self, environ: Mapping[str, str] = os.environ) -> str | None:
        return environ.get(self.http.token_env) or None


def _defaults() -> dict:
    text = resources.files("ccengine.config").joinpath("defaults.toml").read_text(encoding="utf-8")
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
    out += _port_clashes(config)
    out += _catalogue_problems(config)
    return out


def _port_clashes(config: Config) -> list[str]:
    """Two of the engine's listeners on one port and overlapping addresses cannot both start."""
    listeners = [("fastagi", config.fastagi.bind, config.fastagi.port),
                 ("http", config.http.bind, config.http.port)]
    out = []
    for i, (name, bind, port) in enumerate(listeners):
        for other, other_bind, other_port in listeners[i + 1:]:
            overlap = bind == other_bind or "0.0.0.0" in (bind, other_bind) or \
                "::" in (bind, other_bind)
            if port == other_port and overlap:
                out.append(f"{other}.port: {other_port} is also {name}.port on an overlapping "
                           "address; each listener needs its own port")
    return out


def _catalogue_problems(config: Config) -> list[str]:
    """The prompt catalogue the engine builds at start, with this configuration's texts."""
    from ccengine.prompts.catalogue import CatalogueError, load_catalogue
    try:
        load_catalogue(config.prompts, company=config.company.name,
                       languages=config.company.languages,
                       default_language=config.company.default_language)
    except CatalogueError as exc:
        return list(exc.problems)
    except ValueError as exc:       # a company section already reported above
        return [f"prompts: {exc}"]
    return []


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
