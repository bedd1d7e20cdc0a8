"""Hotline metrics (bounded labels: outcome names, configured queues, category kinds).

Every labelled series is created at start (value 0) for each outcome and for each configured
queue x kind, so rate() and the dashboards (complaint rate) have data before the first call and
the number of series is fixed by the configuration.
"""
from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from ccengine.calls.routing import KIND_BY_DIGIT

OUTCOMES = ("routed", "blocked", "closed", "hangup", "default_route")
KINDS = tuple(KIND_BY_DIGIT.values())


class HotlineMetrics:
    def __init__(self, registry: CollectorRegistry, queues: Iterable[str] = ()):
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
        self.menu_defaulted = Counter(
            "ccengine_menu_defaulted_total",
            "Callers sent to the default route because no menu key came within the budget",
            registry=registry)
        self.list_entries = Gauge(
            "ccengine_caller_list_entries",
            "Entries of the caller list files last loaded into Redis (list = blocklist, vip)",
            ["list"], registry=registry)
        self.lists_loaded = Gauge(
            "ccengine_caller_lists_loaded_timestamp_seconds",
            "When the caller list files were last loaded into Redis completely",
            registry=registry)
        self.blocked_from_file = Counter(
            "ccengine_blocked_from_file_total",
            "Callers refused by the in-memory blocklist file while Redis could not answer",
            registry=registry)
        for outcome in OUTCOMES:
            self.calls.labels(outcome)
        for queue in queues:
            for kind in KINDS:
                self.routed.labels(queue, kind)
