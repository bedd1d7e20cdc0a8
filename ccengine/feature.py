"""The seam between app.py and each feature package.

A feature (calls, waiting, agents, complaints, outbound, stats) has a module with
`build(ctx: EngineContext, *, <what it needs from other features>) -> Feature` (or a subclass
of Feature with typed fields for what it provides to others). app.build_features() builds
them in order and passes the parts by name; app.py then wires AGI routes by network script,
long-lived services, HTTP API resources under /api/<name>, web pages under /<name>, and callbacks run after each AMI
(re)login.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry
from twisted.application.service import IService
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource

from ccengine.config import Config
from ccengine.queues.feed import QueueFeed
from ccengine.store.base import RedisConnection


@dataclass
class EngineContext:
    config: Config
    clock: IReactorTime
    registry: CollectorRegistry
    redis: RedisConnection
    # ccengine.ami.servers.AmiServers (one client per Asterisk server, or a lone AmiClient in
    # tests), or None when AMI is disabled.
    ami: Any
    prompter: Any                 # ccengine.prompts.player.Prompter
    api_token: str | None = None
    # The one picture of Asterisk's queues and its AMI feed; None when AMI is disabled.
    queues: QueueFeed | None = None
    # What SIGHUP runs (app.install_reload_signal), gathered from the features' on_reload.
    on_reload: list[Callable[[], Any]] = field(default_factory=list)
    # Whether this engine counts the events of Asterisk server `name` (always, unless
    # ami.shared and another engine holds that server's lease): queue gauges, metrics and
    # Redis writes from events are the owner's only.
    counts_events: Callable[[str], bool] = lambda server: True


@dataclass
class Feature:
    routes: Mapping[str, Any] = field(default_factory=dict)          # network script -> Route
    services: list[IService] = field(default_factory=list)
    api: Mapping[str, Resource] = field(default_factory=dict)        # /api/<name>
    pages: Mapping[str, Resource] = field(default_factory=dict)      # /<name> (the console)
    on_ami_connected: list[Callable[[], Any]] = field(default_factory=list)
    health: Mapping[str, Callable[[], bool]] = field(default_factory=dict)   # /healthz checks
    on_reload: list[Callable[[], Any]] = field(default_factory=list)         # SIGHUP
    # Services that must run on one engine at a time (sweepers, the dialler): with several
    # engines on one Asterisk (ami.shared) they run on the AMI owner only (ami/owner.py).
    singletons: list[IService] = field(default_factory=list)
