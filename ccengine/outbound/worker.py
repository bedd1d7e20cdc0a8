"""The dialler service: every poll_interval one round on the reactor clock.

A round: re-deliver expired claims (and check dials whose lease ended without an answer),
import callbacks and follow-ups, then per kind claim due jobs and dial them while the pacing
allows (a free agent for callbacks, the global rate, the per-number interval), then refresh
the gauges. A round that hits a Redis outage is logged and the next one retries; the jobs
stay where the last atomic step left them.
"""
from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ccengine.ami.protocol import AmiError
from ccengine.outbound.dialler import VERIFY_GRACE, Dialler
from ccengine.outbound.jobs import KINDS, Job, JobStore
from ccengine.outbound.pacing import NEEDS_AGENT
from ccengine.outbound.windows import CallingWindow, valid_zone
from ccengine.runtime.periodic import PeriodicService
from ccengine.waiting.numbers import NumberRejected, check_callback_number

log = Logger()
NO_AGENT_RETRY = 30.0          # seconds before a callback without a free agent is looked at again


class DiallerService(PeriodicService):
    name = "outbound-dialler"  # type: ignore[assignment]  # Twisted types Service.name as None

    def __init__(self, jobs: JobStore, dialler: Dialler, sources: Any, pool: Any,
                 window: CallingWindow, config: Any, number_rules: Any, metrics: Any,
                 clock: Any, default_tz: str):
        super().__init__(clock, config.poll_interval)
        self.jobs = jobs
        self.dialler = dialler
        self.sources = sources
        self.pool = pool
        self.window = window
        self.config = config            # OutboundConfig
        self.number_rules = number_rules  # WaitingConfig: the same number checks as callbacks
        self.metrics = metrics
        self.default_tz = default_tz

    async def round(self) -> None:
        now = self.clock.seconds()
        _, expired_dials = await self.jobs.redeliver(now)
        if expired_dials and self.dialler.ami.connected:
            try:
                await self.dialler.check_inflight(set(expired_dials))
            except AmiError as exc:
                log.warn("channel check failed ({exc}); retried next round", exc=exc)
        await self.sources.import_callbacks(now)
        await self.sources.import_followups(now)
        if self.dialler.ami.connected:
            for kind in KINDS:
                if not await self._dial_kind(kind):
                    break
        self.metrics.snapshot(await self.jobs.counts())

    async def _dial_kind(self, kind: str) -> bool:
        """Dial due jobs of one kind; False when the whole round must stop (rate, AMI down)."""
        lease = float(self.config.redelivery_seconds)
        while True:
            now = self.clock.seconds()
            job = await self.jobs.claim(kind, now, lease)
            if job is None:
                return True
            verdict = await self.handle(job, now)
            if verdict == "stop_round":
                return False
            if verdict == "stop_kind":
                return True

    async def handle(self, job: Job, now: float) -> str:
        """One claimed job: window, number, agent, dial. Returns next / stop_kind / stop_round."""
        tz = job.tz if valid_zone(job.tz) else self.default_tz
        opening = self.window.next_opening(now, tz)
        if opening != now:
            await self.jobs.defer(job, opening if opening is not None else now + 86400, True)
            return "next"
        try:
            check_callback_number(job.number, self.number_rules)
        except NumberRejected as exc:
            await self._finish_undialled(job, "invalid_number", "failed", now, exc.reason)
            return "next"
        reservation, queue = None, job.queue or "outbound"
        if kind_needs_agent(job.kind):
            reservation = None if self.pool is None else await self.pool.reserve(
                job.queue, job.id, now, int(self.config.originate_timeout + VERIFY_GRACE))
            if reservation is None:
                await self.jobs.defer(job, now + NO_AGENT_RETRY)
                return "stop_kind"
            queue = reservation.queue
        result, retry_at = await self.dialler.dial(job, reservation, queue)
        if result in ("ok", "unsure"):
            return "next"
        if reservation is not None:
            await self.pool.release(reservation)
        if result == "do_not_call":
            await self._finish_undialled(job, "do_not_call", "cancelled", now, "dnc")
            return "next"
        if result in ("rate", "interval"):
            await self.jobs.defer(job, max(retry_at, now + 1.0))
            return "stop_round" if result == "rate" else "next"
        return "stop_round" if result == "not_sent" else "next"

    async def _finish_undialled(self, job: Job, outcome: str, final: str, now: float,
                                reason: str) -> None:
        record = {"attempt": 0, "channel_id": "", "outcome": outcome, "at": round(now, 3),
                  "reason": reason}
        if await self.jobs.finish_undialled(job, outcome, now, final, record):
            self.metrics.attempt(job.kind, outcome)
            await self.sources.finish_job(job, final, now)


def kind_needs_agent(kind: str) -> bool:
    return kind in NEEDS_AGENT
