"""Outbound metrics. Labels are bounded: kind (3 values), outcome (jobs.OUTCOMES), queue
(configured queues only)."""
from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ccengine.outbound.jobs import KINDS, OUTCOMES, Counts

SURVEY_BUCKETS = (1, 2, 3, 4, 5)


class OutboundMetrics:
    def __init__(self, registry: CollectorRegistry, queues: Iterable[str]):
        self.queues = set(queues)
        self.attempts = Counter("ccengine_outbound_attempts_total",
                                "Dial attempts by job kind and outcome", ["kind", "outcome"],
                                registry=registry)
        self.waiting = Gauge("ccengine_outbound_jobs_waiting",
                             "Jobs waiting to be dialled (due or later), by kind", ["kind"],
                             registry=registry)
        self.outside = Gauge("ccengine_outbound_jobs_outside_window",
                             "Waiting jobs that were due but are outside the customer's calling "
                             "window, by kind", ["kind"], registry=registry)
        self.in_flight = Gauge("ccengine_outbound_dials_in_flight",
                               "Originates sent whose outcome is not known yet", registry=registry)
        self.survey = Histogram("ccengine_survey_score", "Satisfaction survey scores (1-5)",
                                ["queue"], buckets=SURVEY_BUCKETS, registry=registry)
        for queue in (*sorted(self.queues), "other"):
            self.survey.labels(queue)
        for kind in KINDS:
            self.waiting.labels(kind)
            self.outside.labels(kind)
            for outcome in OUTCOMES:
                self.attempts.labels(kind, outcome)

    def attempt(self, kind: str, outcome: str) -> None:
        self.attempts.labels(kind, outcome if outcome in OUTCOMES else "unknown").inc()

    def snapshot(self, counts: Counts) -> None:
        """Gauges from a Redis snapshot (recomputed every round, never inc/dec)."""
        for queue in (*sorted(self.queues), "other"):
            self.survey.labels(queue)
        for kind in KINDS:
            self.waiting.labels(kind).set(counts.waiting.get(kind, 0))
            self.outside.labels(kind).set(counts.outside.get(kind, 0))
        self.in_flight.set(counts.inflight)

    def survey_score(self, queue: str, score: int) -> None:
        self.survey.labels(queue if queue in self.queues else "other").observe(score)
