"""Metric families of the AMI client (names fixed by docs/architecture.md)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from ccengine.ami.protocol import BAD_MESSAGE_REASONS


class AmiMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.connected = Gauge(
            "ccengine_ami_connected", "1 while logged in to the Asterisk Manager Interface",
            registry=registry)
        self.reconnects = Counter(
            "ccengine_ami_reconnects", "Successful AMI logins after the first one",
            registry=registry)
        self.events = Counter(
            "ccengine_ami_events", "AMI events dispatched to subscribers", registry=registry)
        self.bad_events = Counter(
            "ccengine_ami_bad_events",
            "AMI input that could not be used as is, or whose handler failed", ["reason"],
            registry=registry)
        for reason in BAD_MESSAGE_REASONS:
            self.bad_events.labels(reason=reason)

    def bad(self, reason: str) -> None:
        if reason not in BAD_MESSAGE_REASONS:
            raise ValueError(f"unknown bad-event reason {reason!r}")
        self.bad_events.labels(reason=reason).inc()
