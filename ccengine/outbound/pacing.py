"""Progressive pacing: one reserved free agent per dial, a global rate, nothing more.

For callbacks an agent is reserved BEFORE the customer is dialled: a hold
`cc:outbound:hold:{agent}` (SET NX with a TTL) on an agent who is logged in, idle (not
paused, not ringing, not on a call, wrap-up over) in the job's own queue or else in
`outbound`. A held agent is not free for the next dial, so the number of dials in flight can
never exceed the number of free agents (FreePBX issue 621: more callbacks dialled than free
agents). The hold ends when the attempt fails, or a short grace after the customer answered
(by then the queue has connected the call and the agent's state says on_call); its TTL
frees it if the engine dies. Surveys and complaint follow-ups are IVR calls (AGI `survey`,
AGI `followup` of the complaints feature): no agent, only the rate limit.

`dial_budget` is the pure decision; `AgentPool` applies it to Redis.
"""
from __future__ import annotations

from functools import partial

from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable, Mapping

from ccengine.store import keys
from ccengine.store.base import RedisConnection

NEEDS_AGENT = frozenset({"callback"})


def dial_budget(free_agents: Iterable[str], held: Iterable[str], rate_left: int,
                due_jobs: int) -> list[str]:
    """The agents to reserve for new dials now: free and not held, at most `rate_left` and
    `due_jobs` of them, in a stable order (longest idle first is the caller's order)."""
    held_set = set(held)
    out: list[str] = []
    for agent in free_agents:
        if len(out) >= min(rate_left, due_jobs):
            break
        if agent not in held_set and agent not in out:
            out.append(agent)
    return out


@dataclass(frozen=True)
class Reservation:
    agent: str
    queue: str


class AgentPool:
    """Free agents per queue from the agents feature's Redis state, and holds on them.

    `directory` is agents.directory.AgentDirectory (sessions()), `states` agents.state.
    AgentStateStore (get(number) -> {queue: MemberState}); both come from the agents feature
    (AgentsFeature, passed by app.build_features)."""

    def __init__(self, conn: RedisConnection, directory: Any, states: Any, wrapup_seconds: float,
                 fallback_queue: str = "outbound"):
        self.conn = conn
        self.directory = directory
        self.states = states
        self.wrapup_seconds = wrapup_seconds
        self.fallback_queue = fallback_queue

    async def free_agents(self, queue: str, now: float) -> list[str]:
        """Agents logged in to `queue` whose effective state there is idle, longest idle first."""
        from ccengine.agents.state import effective
        sessions: Mapping[str, Any] = await self.directory.sessions()
        idle = []
        for number, session in sessions.items():
            if queue not in session.queues:
                continue
            ms = (await self.states.get(number)).get(queue)
            if ms is not None and effective(ms, now, self.wrapup_seconds) == "idle":
                idle.append((ms.since, number))
        return [number for _, number in sorted(idle)]

    async def held(self, agents: list[str]) -> set[str]:
        if not agents:
            return set()

        async def op(r):
            async with r.pipeline(transaction=False) as p:
                for agent in agents:
                    p.exists(keys.outbound_agent_hold(agent))
                found = await p.execute()
            return {a for a, present in zip(agents, found) if present}
        return await self.conn.call(op)

    def queues_for(self, job_queue: str) -> list[str]:
        return [q for q in dict.fromkeys([job_queue, self.fallback_queue]) if q]

    async def free_count(self, queue: str, now: float) -> int:
        agents = await self.free_agents(queue, now)
        return len(set(agents) - await self.held(agents))

    async def reserve(self, job_queue: str, job_id: str, now: float,
                      hold_seconds: int) -> Reservation | None:
        """Hold one free agent of the job's queue (else of the fallback queue); None if none.
        SET NX makes two workers racing for the same agent end with one hold."""
        for queue in self.queues_for(job_queue):
            agents = await self.free_agents(queue, now)
            for agent in dial_budget(agents, await self.held(agents), len(agents), len(agents)):
                key = keys.outbound_agent_hold(agent)
                taken = await self.conn.call(partial(_hold, key=key, job_id=job_id,
                                                     seconds=hold_seconds))
                if taken:
                    return Reservation(agent, queue)
        return None

    async def keep(self, reservation: Reservation, seconds: int) -> None:
        key = keys.outbound_agent_hold(reservation.agent)
        await self.conn.call(lambda r: r.expire(key, max(1, int(seconds))))

    async def release(self, reservation: Reservation) -> None:
        key = keys.outbound_agent_hold(reservation.agent)
        await self.conn.call(lambda r: r.delete(key))


def _hold(r: Any, key: str, job_id: str, seconds: int) -> Any:
    """SET NX with a lifetime: the hold of one agent for one job."""
    return r.set(key, job_id, nx=True, ex=seconds)
