"""Wiring of the waiting-callers feature: the queue-announce route, the closed-hours offer for
the hotline (ctx.shared["closed_offer"]), the callback store for the dialler
(ctx.shared["callbacks"]), AMI subscriptions and the periodic sweep."""
from __future__ import annotations

from typing import Any

from ccengine.feature import EngineContext, Feature
from ccengine.periodic import PeriodicService
from ccengine.waiting.announce import AnnounceParts, ClosedHoursOffer, QueueAnnounceRoute
from ccengine.waiting.callbacks import CallbackStore
from ccengine.waiting.events import EstimateLedger, StaffingTracker, WaitingEvents
from ccengine.waiting.line import WaitingLine
from ccengine.waiting.metrics import WaitingMetrics
from ccengine.waiting.offer import CallbackDialog

# A waiting caller is announced every announce_frequency seconds (plus a ring cycle, the
# announcement itself and a possible callback dialog); one not seen for this many periods
# has left without the engine noticing.
STALE_PERIODS = 4


class WaitingSweeper(PeriodicService):
    name = "waiting-sweeper"

    """Every `interval`: expire callbacks, re-deliver stale claims, sweep the lines, refresh
    the pending gauge. One failed round (Redis down) is logged; the next one retries."""

    def __init__(self, callbacks: CallbackStore, line: WaitingLine, metrics: WaitingMetrics,
                 clock: Any, interval: float, claim_timeout: float, stale_after: dict[str, float]):
        super().__init__(clock, interval)
        self.callbacks = callbacks
        self.line = line
        self.metrics = metrics
        self.claim_timeout = claim_timeout
        self.stale_after = stale_after

    async def round(self) -> None:
        now = self.clock.seconds()
        await self.callbacks.expire(now)
        await self.callbacks.redeliver(now, self.claim_timeout)
        for queue, stale in self.stale_after.items():
            await self.line.sweep(queue, now - stale)
        self.metrics.set_pending(await self.callbacks.pending_counts())


def build(ctx: EngineContext) -> Feature:
    config = ctx.config.waiting
    queues = dict(ctx.config.queues)
    metrics = WaitingMetrics(ctx.registry, queues)
    line = WaitingLine(ctx.redis, config.handling_time_window)
    callbacks = CallbackStore(ctx.redis, list(queues), config.callback_expire_hours,
                              config.finished_keep_days, metrics)
    staffing = StaffingTracker(list(queues))
    # Asterisk's own view of who staffs each queue (member events, QueueStatus after each
    # login); the hotline uses it too, to route by language (calls/hotline.py).
    ctx.shared["agent_availability"] = staffing.available
    ledger = EstimateLedger(metrics)
    events = WaitingEvents(line, staffing, ledger, ctx.clock, list(queues))
    dialog = CallbackDialog(config, ctx.prompter, callbacks, metrics, ctx.clock)

    def callback_taken(uniqueid: str) -> None:
        # The statistics feature is built after this one (app.FEATURES): looked up per call.
        stats = ctx.shared.get("queue_stats")
        if stats is not None:
            stats.consumer.callback_taken(uniqueid)

    parts = AnnounceParts(config=config, queues=queues, prompter=ctx.prompter, line=line,
                          dialog=dialog, staffing=staffing, ledger=ledger, events=events,
                          metrics=metrics, clock=ctx.clock, on_callback=callback_taken)
    ctx.shared["closed_offer"] = ClosedHoursOffer(parts)
    ctx.shared["callbacks"] = callbacks
    on_connected = []
    if ctx.ami is not None:
        events.attach(ctx.ami)
        on_connected.append(lambda: events.resync(ctx.ami))
    stale = {name: q.announce_frequency * STALE_PERIODS + 60 for name, q in queues.items()}
    sweeper = WaitingSweeper(callbacks, line, metrics, ctx.clock, config.sweep_interval,
                             config.claim_timeout_seconds, stale)
    return Feature(routes={QueueAnnounceRoute.script: QueueAnnounceRoute(parts)},
                   services=[sweeper], on_ami_connected=on_connected)
