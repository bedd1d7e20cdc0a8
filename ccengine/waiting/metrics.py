"""Metrics of the waiting-callers feature. Labels: `queue` (configured names only), `choice`."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Estimated minus actual remaining wait, seconds: negative = the caller was answered later
# than announced (the promise was broken), positive = earlier.
ERROR_BUCKETS = (-900, -600, -300, -180, -120, -60, -30, -15, 0, 15, 30, 60, 120, 180, 300,
                 600, 900)
CHOICES = ("stay", "callback", "none", "hangup", "unavailable")


class WaitingMetrics:
    def __init__(self, registry: CollectorRegistry, queues: Iterable[str]):
        self.queues = tuple(queues)
        self.requested = Counter("ccengine_callbacks_requested_total",
                                 "Callback requests confirmed by callers (updates included)",
                                 ["queue"], registry=registry)
        self.completed = Counter("ccengine_callbacks_completed_total",
                                 "Callbacks the dialler completed", ["queue"], registry=registry)
        self.expired = Counter("ccengine_callbacks_expired_total",
                               "Callbacks that expired before being completed", ["queue"],
                               registry=registry)
        self.failed = Counter("ccengine_callbacks_failed_total",
                              "Callbacks the dialler gave up on", ["queue"], registry=registry)
        self.pending = Gauge("ccengine_callbacks_pending",
                             "Callbacks waiting for the dialler (snapshot of Redis)", ["queue"],
                             registry=registry)
        self.rejected = Counter("ccengine_callbacks_rejected_total",
                                "Callback numbers refused (nothing stored)", ["reason"],
                                registry=registry)
        self.announcements = Counter("ccengine_wait_announcements_total",
                                     "Position announcements and what the caller chose",
                                     ["queue", "choice"], registry=registry)
        self.estimate_error = Histogram(
            "ccengine_wait_estimate_error_seconds",
            "First announced wait estimate minus the actual remaining wait until answer",
            ["queue"], buckets=ERROR_BUCKETS, registry=registry)
        for queue in self.queues:
            for family in (self.requested, self.completed, self.expired, self.failed,
                           self.pending):
                family.labels(queue)

    def finished(self, outcome: str, queue: str) -> None:
        family = {"completed": self.completed, "failed": self.failed,
                  "expired": self.expired}[outcome]
        if queue in self.queues:
            family.labels(queue).inc()

    def set_pending(self, counts: Mapping[str, int]) -> None:
        """Replace the pending gauge with a fresh snapshot (never inc/dec)."""
        for queue in self.queues:
            self.pending.labels(queue).set(counts.get(queue, 0))
