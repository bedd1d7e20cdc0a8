"""Metric families of the AMI clients (names fixed by docs/architecture.md), one series per
Asterisk server (`server`: its name in the configuration, so the label is bounded)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from ccengine.ami.protocol import BAD_MESSAGE_REASONS, UNPARSED_REASONS


class _Families:
    def __init__(self, registry: CollectorRegistry):
        self.connected = Gauge(
            "ccengine_ami_connected", "1 while logged in to the Asterisk Manager Interface",
            ["server"], registry=registry)
        self.reconnects = Counter(
            "ccengine_ami_reconnects", "Successful AMI logins after the first one", ["server"],
            registry=registry)
        self.events = Counter(
            "ccengine_ami_events", "AMI events dispatched to subscribers", ["server"],
            registry=registry)
        self.unparsed_events = Counter(
            "ccengine_ami_unparsed_events",
            "AMI events dropped before a parse: no subscriber for the name (unsubscribed) or a "
            "VarSet of a variable no subscriber reads (varset_variable); also counted in "
            "ccengine_ami_events_total", ["server", "reason"], registry=registry)
        self.bad_events = Counter(
            "ccengine_ami_bad_events",
            "AMI input that could not be used as is, or whose handler failed",
            ["server", "reason"], registry=registry)


class AmiMetrics:
    """One server's AMI metrics; `for_server(name)` gives another server's, same families."""

    def __init__(self, registry: CollectorRegistry | None = None, server: str = "asterisk",
                 families: _Families | None = None):
        if families is None:
            if registry is None:
                raise ValueError("AmiMetrics needs a registry or the families of another")
            families = _Families(registry)
        self._families = families
        self.server = server
        self.connected = families.connected.labels(server)
        self.reconnects = families.reconnects.labels(server)
        self.events = families.events.labels(server)
        self._bad = {reason: families.bad_events.labels(server, reason)
                     for reason in BAD_MESSAGE_REASONS}
        self.unparsed = {reason: families.unparsed_events.labels(server, reason)
                         for reason in UNPARSED_REASONS}

    def for_server(self, server: str) -> AmiMetrics:
        return AmiMetrics(server=server, families=self._families)

    def bad(self, reason: str) -> None:
        counter = self._bad.get(reason)
        if counter is None:
            raise ValueError(f"unknown bad-event reason {reason!r}")
        counter.inc()
