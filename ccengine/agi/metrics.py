"""Metric families of the FastAGI server (names fixed by docs/architecture.md)."""
from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

# Outcomes of one session (label `outcome`): ok, hangup, error, lost, watchdog, max_session,
# unknown_script. `script` is a configured route name or "unknown", never the raw request.
# Error kinds (label `kind`): env_timeout, env_too_large, line_too_long, protocol,
# unsolicited_reply, timeout, cancelled, invalid_command, usage, connection_lost, handler,
# watchdog_handler.


class AgiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sessions_total = Counter(
            "ccengine_agi_sessions", "FastAGI sessions ended, by route script and outcome",
            ["script", "outcome"], registry=registry)
        self.sessions_active = Gauge(
            "ccengine_agi_sessions_active", "FastAGI sessions currently running a route",
            registry=registry)
        self.errors_total = Counter(
            "ccengine_agi_errors", "FastAGI failures by kind", ["kind"], registry=registry)
        self.watchdog_fired_total = Counter(
            "ccengine_agi_watchdog_fired",
            "Sessions where the engine held the line silent too long and the watchdog took over",
            ["script"], registry=registry)

    def track_active(self, count: Callable[[], int]) -> None:
        """Compute the active gauge at scrape time from the server's own session set."""
        self.sessions_active.set_function(count)
