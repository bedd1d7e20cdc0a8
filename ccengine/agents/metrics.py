"""Agent metrics. Labels are bounded: queues from the configuration (anything else is `other`),
states from state.STATES, pause reasons from the configuration, login results from a fixed list.

`ccengine_agents{queue,state}` and `ccengine_queue_available_agents{queue}` are computed at
scrape time from the state store's snapshot (no inc/dec bookkeeping).
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ccengine.agents.state import AVAILABLE, STATES, effective

LOGIN_RESULTS = ("ok", "already", "wrong_pin", "locked", "unknown_agent", "phone_limited", "elsewhere",
                 "phone_in_use", "no_input", "not_a_phone", "error")
PAUSE_RESULTS = ("paused", "refused_staffing", "invalid_reason", "not_logged_in", "error")


class _AgentsCollector(Collector):
    def __init__(self, queues: tuple[str, ...], snapshot: Callable[[], dict], clock: Any,
                 wrapup_seconds: float):
        self.queues = queues
        self.snapshot = snapshot
        self.clock = clock
        self.wrapup_seconds = wrapup_seconds

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = self.clock.seconds()
        counts = {(q, s): 0 for q in (*self.queues, "other") for s in STATES if s != "logged_out"}
        for (_, queue), ms in self.snapshot().items():
            label = queue if queue in self.queues else "other"
            counts[(label, effective(ms, now, self.wrapup_seconds))] += 1
        agents = GaugeMetricFamily("ccengine_agents", "Logged-in agents by queue and state",
                                   labels=["queue", "state"])
        available = GaugeMetricFamily("ccengine_queue_available_agents",
                                      "Agents logged in and not paused, by queue",
                                      labels=["queue"])
        for (queue, state), value in sorted(counts.items()):
            agents.add_metric([queue, state], value)
        for queue in (*self.queues, "other"):
            available.add_metric([queue], sum(counts[(queue, s)] for s in AVAILABLE))
        yield agents
        yield available


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry, pause_reasons: Iterable[str]):
        self.registry = registry
        self.pause_reasons = frozenset(pause_reasons)
        self.logins = Counter("ccengine_agent_logins_total", "Agent login attempts by result",
                              ["result"], registry=registry)
        self.logouts = Counter("ccengine_agent_logouts_total", "Agent logouts from the phone",
                               registry=registry)
        self.pauses = Counter("ccengine_agent_pauses_total", "Agent pauses by reason",
                              ["reason"], registry=registry)
        self.pause_requests = Counter("ccengine_agent_pause_requests_total",
                                      "Pause feature code uses by result", ["result"],
                                      registry=registry)
        self.resyncs = Counter("ccengine_agent_resyncs_total",
                               "Agent resyncs after an AMI login (kind reconnect or restart)",
                               ["kind"], registry=registry)
        self.repairs = Counter("ccengine_agent_resync_repairs_total",
                               "Drift repaired by a resync, by action", ["action"],
                               registry=registry)
        self.event_backlog = Counter(
            "ccengine_agent_events_coalesced_total",
            "Member events not handled one by one under load: merged (a newer status of the "
            "same member was waiting) or dropped (the backlog was full; a resync follows)",
            ["how"], registry=registry)
        for how in ("merged", "dropped"):
            self.event_backlog.labels(how)
        for result in LOGIN_RESULTS:
            self.logins.labels(result)
        for reason in (*sorted(self.pause_reasons), "other"):
            self.pauses.labels(reason)

    def login(self, result: str) -> None:
        self.logins.labels(result if result in LOGIN_RESULTS else "error").inc()

    def paused(self, reason: str) -> None:
        self.pauses.labels(reason if reason in self.pause_reasons else "other").inc()

    def track_states(self, queues: Iterable[str], snapshot: Callable[[], dict], clock: Any,
                     wrapup_seconds: float) -> None:
        self.registry.register(_AgentsCollector(tuple(sorted(queues)), snapshot, clock,
                                                wrapup_seconds))
