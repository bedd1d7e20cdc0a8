"""Hotline series exist before the first call (ccengine/calls/metrics.py, wired by calls/feature.py)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

from ccengine.calls import feature
from ccengine.calls.metrics import KINDS, OUTCOMES, HotlineMetrics
from ccengine.config import load_config
from ccengine.feature import EngineContext
from ccengine.calls.records import CallRecordStore


def samples(registry: CollectorRegistry, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for family in registry.collect()
            for s in family.samples if s.name == name}


def test_every_outcome_and_queue_kind_series_starts_at_zero():
    """Each outcome and each configured queue x kind has a 0-valued series before any call."""
    registry = CollectorRegistry()
    HotlineMetrics(registry, ["inbound", "complaint"])
    calls = samples(registry, "ccengine_hotline_calls_total")
    assert calls == {(("outcome", o),): 0.0 for o in OUTCOMES}
    routed = samples(registry, "ccengine_routed_calls_total")
    assert routed == {(("kind", k), ("queue", q)): 0.0
                      for q in ("inbound", "complaint") for k in KINDS}
    assert "complaint" in KINDS


def test_feature_creates_the_series_for_the_configured_queues():
    """calls.feature.build passes the configured queue names, so the default config's queues show up."""
    config = load_config(None)
    registry = CollectorRegistry()
    ctx = EngineContext(config=config, clock=Clock(), registry=registry, redis=None, ami=None,
                        prompter=None)
    feature.build(ctx, records=CallRecordStore(None, 10, 1))
    queues = {dict(labels)["queue"] for labels in samples(registry, "ccengine_routed_calls_total")}
    assert queues == set(config.queues)
