"""The engine's shared context for route tests: real Redis, the real prompt catalogue and
player, a fresh metrics registry, and a FastAGIFactory on a task.Clock (tests/agi_harness.py).

    factory, ctx = engine_context(redis_url, now=MONDAY_10AM)
    factory.routes.update(calls_feature.build(ctx, records=records_for(ctx)).routes)
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry

from agi_harness import agi_factory
from ccengine.config import Config, load_config
from ccengine.feature import EngineContext
from ccengine.prompts.catalogue import load_catalogue
from ccengine.prompts.metrics import PromptMetrics
from ccengine.prompts.player import Prompter
from ccengine.store.base import RedisConnection, StoreMetrics
from ccengine.calls.records import CallRecordStore


def prompter_for(config: Config, registry: CollectorRegistry) -> Prompter:
    catalogue = load_catalogue(config.prompts, company=config.company.name,
                               languages=config.company.languages,
                               default_language=config.company.default_language)
    return Prompter(catalogue, PromptMetrics(registry))


def engine_context(redis_url: str, *, now: float, config: Config | None = None,
                   redis_timeout: float = 2.0, clock=None, ami=None, **agi_settings):
    """(factory, ctx) with a task.Clock advanced to `now` (or `clock`, e.g. the real reactor,
    left as it is); no feature built yet."""
    config = config or load_config(None)
    registry = CollectorRegistry()
    from twisted.internet import reactor
    # The real reactor for Redis, as `ccengine run` passes it: scripts take the lane.
    conn = RedisConnection(redis_url, redis_timeout, StoreMetrics(registry), reactor)
    factory, clock, _ = agi_factory({}, clock=clock, registry=registry, **agi_settings)
    if hasattr(clock, "advance"):
        clock.advance(now - clock.seconds())
    ctx = EngineContext(config=config, clock=clock, registry=registry, redis=conn, ami=ami,
                        prompter=prompter_for(config, registry))
    return factory, ctx


def records_written(factory):
    """Fires once the hotline's call records are in Redis: the route writes them after the
    caller is routed, without holding the session (runtime/pending.py)."""
    return factory.routes["hotline"].writes.wait()


def records_for(ctx: EngineContext) -> CallRecordStore:
    """The call-record store app.build_features gives the features, for one context."""
    return CallRecordStore(ctx.redis, ctx.config.records.max_calls, ctx.config.records.ttl_days)
