"""Wiring of the waiting-callers feature: the queue-announce route, its consumers of the queue
feed and the periodic sweep. Provides (WaitingFeature) the closed-hours offer for the hotline,
the callback store for the dialler and the staffing count for language routing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from ccengine.feature import EngineContext, Feature
from ccengine.runtime.periodic import PeriodicService
from ccengine.waiting.announce import AnnounceParts, ClosedHoursOffer, QueueAnnounceRoute
from ccengine.waiting.callbacks import CallbackStore
from ccengine.queues.picture import QueuePicture
from ccengine.waiting.events import EstimateLedger, WaitingEvents
from ccengine.waiting.line import WaitingLine
from ccengine.waiting.metrics import WaitingMetrics
from ccengine.waiting.offer import CallbackDialog

# A waiting caller is announced every announce_frequency seconds (plus a ring cycle, the
# announcement itself and a possible callback dialog); one not seen for this many periods
# has left without the engine noticing.
STALE_PERIODS = 4


class WaitingSweeper(PeriodicService):
    name = "waiting-sweeper"  # type: ignore[assignment]  # Twisted types Service.name as None

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


@dataclass(kw_only=True)
class WaitingFeature(Feature):
    closed_offer: ClosedHoursOffer
    callbacks: CallbackStore
    staffing: Callable[[str], int | None]     # queue -> agents staffing it (None: not known)


def build(ctx: EngineContext, *,
          on_callback: Callable[[str], None] = lambda uniqueid: None) -> WaitingFeature:
    """`on_callback(uniqueid)`: told when a waiting caller's callback is stored (the queue
    statistics end that caller's stay as `callback`, not as an abandon)."""
    config = ctx.config.waiting
    queues = dict(ctx.config.queues)
    metrics = WaitingMetrics(ctx.registry, queues)
    line = WaitingLine(ctx.redis, config.handling_time_window)
    callbacks = CallbackStore(ctx.redis, list(queues), config.callback_expire_hours,
                              config.finished_keep_days, metrics)
    # Asterisk's own view of who staffs each queue (ccengine/queues/); without AMI a picture
    # that never syncs ("not known").
    picture = ctx.queues.picture if ctx.queues is not None else QueuePicture(ctx.clock)
    ledger = EstimateLedger(metrics)
    events = WaitingEvents(line, ledger, ctx.clock, list(queues))
    dialog = CallbackDialog(config, ctx.prompter, callbacks, metrics, ctx.clock)
    parts = AnnounceParts(config=config, queues=queues, prompter=ctx.prompter, line=line,
                          dialog=dialog, picture=picture, ledger=ledger, events=events,
                          metrics=metrics, clock=ctx.clock, on_callback=on_callback)
    if ctx.queues is not None:
        events.attach(ctx.queues)
    stale: dict[str, float] = {name: q.announce_frequency * STALE_PERIODS + 60.0
                               for name, q in queues.items()}
    sweeper = WaitingSweeper(callbacks, line, metrics, ctx.clock, config.sweep_interval,
                             config.claim_timeout_seconds, stale)
    return WaitingFeature(routes={QueueAnnounceRoute.script: QueueAnnounceRoute(parts)},
                          singletons=[sweeper], closed_offer=ClosedHoursOffer(parts),
                          callbacks=callbacks, staffing=picture.staffing)
