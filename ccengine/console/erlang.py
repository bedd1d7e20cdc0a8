"""Erlang C: how many agents a queue needs now (docs/metrics.md, "Staffing advice").

The M/M/N queue: calls arrive at random (Poisson, rate λ per second), each holds an agent for
an exponentially distributed handle time with mean h seconds, callers wait (nobody abandons),
N agents serve. The offered traffic is A = λ·h erlangs.

- Erlang B by the stable recursion B(0) = 1, B(k) = A·B(k-1) / (k + A·B(k-1)), which avoids
  the factorials and powers of the textbook form.
- Erlang C (probability a caller waits): C(N, A) = N·B / (N - A·(1 - B)), for N > A; with
  N <= A the queue grows without bound and every caller waits (C = 1).
- Service level (share answered within t seconds): SL = 1 - C·exp(-(N - A)·t / h).
- Average speed of answer: ASA = C·h / (N - A).

`agents_needed` is the smallest N whose service level meets the target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MAX_AGENTS = 2000      # the search stops here (a 2,000-agent centre is the largest we plan for)


def erlang_b(agents: int, traffic: float) -> float:
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic * b / (k + traffic * b)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a caller has to wait."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    b = erlang_b(agents, traffic)
    return agents * b / (agents - traffic * (1 - b))


def service_level(agents: int, traffic: float, handle_seconds: float, within: float) -> float:
    """Share of callers answered within `within` seconds."""
    if traffic <= 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return 1.0 - erlang_c(agents, traffic) * math.exp(-(agents - traffic) * within / handle_seconds)


def average_speed_of_answer(agents: int, traffic: float, handle_seconds: float) -> float:
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * handle_seconds / (agents - traffic)


@dataclass(frozen=True)
class Advice:
    agents: int             # needed now for the target (0: no traffic)
    traffic: float          # offered erlangs
    service_level: float    # what `agents` would give
    capped: bool = False    # the target was not reached below MAX_AGENTS


def agents_needed(arrivals_per_second: float, handle_seconds: float, within: float,
                  target: float) -> Advice:
    """The smallest number of agents that answers `target` (0..1) of callers within `within`
    seconds, for callers arriving at `arrivals_per_second` with mean handle time
    `handle_seconds`."""
    if arrivals_per_second <= 0 or handle_seconds <= 0:
        return Advice(0, 0.0, 1.0)
    traffic = arrivals_per_second * handle_seconds
    agents = max(1, math.floor(traffic) + 1)
    while agents < MAX_AGENTS:
        level = service_level(agents, traffic, handle_seconds, within)
        if level >= target:
            return Advice(agents, traffic, level)
        agents += 1
    return Advice(MAX_AGENTS, traffic, service_level(MAX_AGENTS, traffic, handle_seconds, within),
                  capped=True)
