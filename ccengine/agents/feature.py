"""Wiring of the agents feature: feature-code routes, state tracking and the resync after each
AMI login, both fed by the queue feed (ccengine/queues/)."""
from __future__ import annotations

from dataclasses import dataclass

from ccengine.agents.actions import MemberActions
from ccengine.agents.connect import ConnectAnnouncements
from ccengine.agents.directory import AgentDirectory
from ccengine.agents.login import FeatureCodes
from ccengine.agents.metrics import AgentMetrics
from ccengine.agents.resync import Resync
from ccengine.agents.staffing import StaffingGuard
from ccengine.agents.serial import Serial
from ccengine.agents.state import AgentStateStore
from ccengine.agents.tracker import StateTracker
from ccengine.feature import EngineContext, Feature


@dataclass(kw_only=True)
class AgentsFeature(Feature):
    directory: AgentDirectory
    states: AgentStateStore
    codes: FeatureCodes                   # pause / unpause / log out, also for the console
    staffing: StaffingGuard
    events: Serial | None = None          # the agents' event handlers, one at a time (AMI on)


def build(ctx: EngineContext) -> AgentsFeature:
    config = ctx.config
    settings = config.agents
    directory = AgentDirectory(ctx.redis)
    store = AgentStateStore(ctx.redis)
    actions = MemberActions(ctx.ami)
    metrics = AgentMetrics(ctx.registry, [*settings.pause_reasons.values(),
                                          settings.no_answer_reason])
    metrics.track_states(config.queues, lambda: store.snapshot, ctx.clock, settings.wrapup_seconds)
    staffing = StaffingGuard(directory, store, dict(config.queues), config.company.timezone,
                             settings.wrapup_seconds, ctx.clock)
    codes = FeatureCodes(settings, directory, store, actions, staffing, ctx.prompter, metrics,
                         ctx.clock)
    connect = ConnectAnnouncements(settings, dict(config.queues), directory, ctx.prompter,
                                   codes.phone_of)
    feature = AgentsFeature(routes={**codes.routes(), **connect.routes()}, directory=directory,
                            states=store, codes=codes, staffing=staffing)
    if ctx.queues is not None:
        serial = Serial()   # events and resyncs, one at a time
        tracker = StateTracker(directory, store, actions, settings, ctx.clock, metrics)
        tracker.attach(ctx.queues, serial)
        resync = Resync(ctx.queues, directory, store, actions, settings, ctx.clock, metrics,
                        server_of=getattr(ctx.ami, "server_of_interface", None))
        resync.attach(ctx.queues, serial)
        feature.events = serial
    return feature
