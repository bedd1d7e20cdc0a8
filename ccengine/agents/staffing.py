"""Staffing guard: during a queue's opening hours, a pause that would leave the queue with fewer
available agents (logged in, not paused) than `min_available_agents` is refused.

A supervisor overrides it with `ccengine agents allow-pause NUMBER` (a one-time permission in
Redis, with a TTL), which the pause route consumes.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from collections.abc import Mapping

from ccengine.agents.state import AVAILABLE, MemberState, effective
from ccengine.calls import hours
from ccengine.config import QueueConfig


def understaffed_queues(agent: str, agent_queues: Mapping[str, int],
                        states: Mapping[str, Mapping[str, MemberState]],
                        queues: Mapping[str, QueueConfig], now: float, local_now: datetime,
                        wrapup_seconds: float) -> list[str]:
    """Queues of `agent` that are open and would drop below their minimum if `agent` paused.

    `states` is {agent number: {queue: MemberState}} for every logged-in agent."""
    refused = []
    for queue in sorted(agent_queues):
        config = queues.get(queue)
        if config is None or config.min_available_agents <= 0 or not hours.is_open(config, local_now):
            continue
        available = {number for number, per in states.items()
                     if queue in per and effective(per[queue], now, wrapup_seconds) in AVAILABLE}
        if agent not in available:
            continue   # already unavailable there: pausing changes nothing for this queue
        if len(available) - 1 < config.min_available_agents:
            refused.append(queue)
    return refused


class StaffingGuard:
    def __init__(self, directory: Any, store: Any, queues: Mapping[str, QueueConfig],
                 timezone: str, wrapup_seconds: float, clock: Any):
        self.directory = directory
        self.store = store
        self.queues = queues
        self.timezone = timezone
        self.wrapup_seconds = wrapup_seconds
        self.clock = clock

    async def refused(self, session: Any) -> list[str]:
        """The queues that forbid this pause now ([] = allowed, or overridden by a supervisor)."""
        now = self.clock.seconds()
        sessions = await self.directory.sessions()
        states = {number: await self.store.get(number) for number in sessions}
        refused = understaffed_queues(session.number, session.queues, states, self.queues, now,
                                      hours.local_now(now, self.timezone), self.wrapup_seconds)
        if refused and await self.directory.take_pause_override(session.number):
            return []
        return refused
