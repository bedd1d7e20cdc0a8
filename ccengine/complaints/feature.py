"""Wiring of the complaints feature (app.py calls `build(ctx)`).

Offers `ctx.shared["repeat_complaints"]` (RepeatComplainants) to the hotline and
`ctx.shared["complaints"]` (the Complaints service) to later features, so it must be built
BEFORE ccengine.calls.feature. Uses `ctx.shared["call_records"]` and
`ctx.shared["agent_directory"]` when present, else its own stores on the same Redis.
"""
from __future__ import annotations

from twisted.internet.defer import Deferred

from ccengine.complaints.api import ComplaintsResource
from ccengine.complaints.escalation import TransferStore, WarmEscalation
from ccengine.complaints.followup import FollowUpRoute, FollowUpScheduler
from ccengine.complaints.metrics import ComplaintMetrics
from ccengine.complaints.repeat import RepeatComplainants
from ccengine.complaints.service import Complaints
from ccengine.complaints.store import TicketStore
from ccengine.complaints.sweeper import DeadlineSweeper
from ccengine.complaints.waiting import WaitingComplainants
from ccengine.feature import EngineContext, Feature
from ccengine.queues.picture import QueuePicture


def build(ctx: EngineContext) -> Feature:
    settings = ctx.config.complaints
    metrics = ComplaintMetrics(ctx.registry)
    store = TicketStore(ctx.redis, settings.deadline_hours)
    followups = FollowUpScheduler(ctx.redis, ctx.clock, settings.followup_after_hours)
    complaints = Complaints(store, metrics, ctx.clock, settings.deadline_hours, followups)
    repeat = RepeatComplainants(store, ctx.clock, settings.repeat_days, settings.repeat_priority,
                                settings.complaint_queue, metrics)
    directory = ctx.shared.get("agent_directory")
    if directory is None:
        from ccengine.agents.directory import AgentDirectory
        directory = AgentDirectory(ctx.redis)
    records = ctx.shared.get("call_records")
    if records is None:     # built before the calls feature (it needs repeat_complaints)
        from ccengine.store.calls import CallRecordStore
        records = CallRecordStore(ctx.redis, ctx.config.records.max_calls,
                                  ctx.config.records.ttl_days)
    escalation = WarmEscalation(settings, complaints, TransferStore(ctx.redis), repeat, ctx.ami,
                                ctx.clock, call_records=records, agent_directory=directory)
    ctx.shared["repeat_complaints"] = repeat
    ctx.shared["complaints"] = complaints

    on_connected = []
    picture = ctx.queues.picture if ctx.queues is not None else QueuePicture(ctx.clock)
    if ctx.queues is not None:
        ctx.ami.subscribe("AttendedTransfer", escalation.on_attended_transfer)
        ctx.queues.on(("Hangup",), escalation.on_hangup)
        on_connected.append(lambda: Deferred.fromCoroutine(escalation.resync()))
    services = [
        DeadlineSweeper(complaints, ctx.ami, ctx.clock, settings.sweep_interval),
        WaitingComplainants(ctx.redis, ctx.ami, picture, ctx.clock, metrics,
                            settings.complaint_queue, settings.supervisor_queue,
                            settings.wait_limit_seconds, settings.wait_check_interval),
    ]
    return Feature(
        routes={"escalate": escalation, "followup": FollowUpRoute(complaints, ctx.prompter)},
        services=services,
        api={"complaints": ComplaintsResource(complaints, ctx.api_token,
                                              ctx.config.http.max_body_bytes)},
        on_ami_connected=on_connected)
