"""Wiring of the caller's path: the hotline route and its stores."""
from __future__ import annotations

from ccengine.calls.hotline import HotlineRoute, HotlineSettings
from ccengine.calls.metrics import HotlineMetrics
from ccengine.feature import EngineContext, Feature
from ccengine.store.calls import CallRecordStore
from ccengine.store.customers import CustomerStore


def build(ctx: EngineContext) -> Feature:
    config = ctx.config
    customers = CustomerStore(ctx.redis)
    records = CallRecordStore(ctx.redis, config.records.max_calls, config.records.ttl_days)
    ctx.shared["customers"] = customers
    ctx.shared["call_records"] = records
    settings = HotlineSettings(company=config.company, ivr=config.ivr, callers=config.callers,
                               queues=dict(config.queues))
    hotline = HotlineRoute(settings, customers, records, ctx.prompter,
                           HotlineMetrics(ctx.registry, config.queues), ctx.clock,
                           closed_offer=ctx.shared.get("closed_offer"),
                           repeat=ctx.shared.get("repeat_complaints"))
    return Feature(routes={"hotline": hotline})
