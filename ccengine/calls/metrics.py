"""Hotline metrics (bounded labels: outcome names, configured queues, category kinds)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class HotlineMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.calls = Counter(
            "ccengine_hotline_calls_total",
            "Hotline calls by outcome (routed, blocked, closed, hangup, default_route)",
            ["outcome"], registry=registry)
        self.routed = Counter(
            "ccengine_routed_calls_total", "Calls routed into a queue, by queue and kind of call",
            ["queue", "kind"], registry=registry)
        self.language_switches = Counter(
            "ccengine_language_switches_total", "Callers who changed the IVR language",
            registry=registry)
