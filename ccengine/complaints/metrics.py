"""Complaint metrics. Labels are bounded: levels and reasons from tickets.py, fixed result lists.

`ccengine_complaint_tickets_open` and `ccengine_complaint_tickets_overdue` are computed at
scrape time from the snapshot the sweeper takes on each run (no inc/dec bookkeeping).

Ops pack inputs: the share of tickets closed within their limit (target 96 %) is
`closed_total{within_limit="true"} / closed_total`; the complaint rate (target < 1 % of calls)
is `rate(ccengine_complaint_tickets_opened_total) / rate(ccengine_hotline_calls_total{outcome="routed"})`,
and `ccengine_routed_calls_total{kind="complaint"}` gives the calls routed as complaints.
"""
from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ccengine.complaints.tickets import LEVELS, REASONS

TRANSFER_RESULTS = ("connected", "no_supervisor", "caller_hangup", "failed")
FOLLOWUP_RESULTS = ("scheduled", "satisfied", "unsatisfied")
MOVE_RESULTS = ("moved", "failed")


class _Snapshot(Collector):
    def __init__(self) -> None:
        self.open = 0
        self.overdue = 0
        self.taken = False

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if not self.taken:          # nothing known yet: better no series than a false 0
            return
        yield GaugeMetricFamily("ccengine_complaint_tickets_open",
                                "Complaint tickets open or escalated", value=self.open)
        yield GaugeMetricFamily("ccengine_complaint_tickets_overdue",
                                "Open complaint tickets past the deadline of their level",
                                value=self.overdue)


class ComplaintMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.opened = Counter("ccengine_complaint_tickets_opened_total",
                              "Complaint tickets opened", registry=registry)
        self.escalations = Counter("ccengine_complaint_escalations_total",
                                   "Complaint tickets moved up a level, by new level and reason",
                                   ["level", "reason"], registry=registry)
        self.chain_end = Counter("ccengine_complaint_chain_end_total",
                                 "Tickets overdue at the last level (manager)", registry=registry)
        self.closed = Counter("ccengine_complaint_tickets_closed_total",
                              "Complaint tickets closed, within their time limit or late",
                              ["within_limit"], registry=registry)
        self.transfers = Counter("ccengine_complaint_transfers_total",
                                 "Warm escalations from a call, by result", ["result"],
                                 registry=registry)
        self.moved = Counter("ccengine_complaint_waiting_moved_total",
                             "Complainants moved from the complaint to the supervisor queue "
                             "after waiting too long", ["result"], registry=registry)
        self.followups = Counter("ccengine_complaint_followups_total",
                                 "Follow-up calls scheduled and their results", ["result"],
                                 registry=registry)
        self.repeat_callers = Counter("ccengine_complaint_repeat_callers_total",
                                      "Calls from callers with an open or recent complaint",
                                      registry=registry)
        self.snapshot = _Snapshot()
        registry.register(self.snapshot)
        for level in LEVELS[1:]:
            for reason in REASONS:
                self.escalations.labels(level, reason)
        for value in ("true", "false"):
            self.closed.labels(value)
        for result in TRANSFER_RESULTS:
            self.transfers.labels(result)
        for result in MOVE_RESULTS:
            self.moved.labels(result)
        for result in FOLLOWUP_RESULTS:
            self.followups.labels(result)

    def escalated(self, level: str, reason: str) -> None:
        self.escalations.labels(level, reason).inc()

    def closed_ticket(self, within: bool) -> None:
        self.closed.labels("true" if within else "false").inc()

    def set_counts(self, open_count: int, overdue: int) -> None:
        self.snapshot.open = open_count
        self.snapshot.overdue = overdue
        self.snapshot.taken = True
