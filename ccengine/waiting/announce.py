"""The queue-announce route (agi://engine/queue-announce) and the closed-hours callback offer.

The dialplan runs this route before the caller's first Queue() and every time Queue() returns
with QUEUESTATUS=TIMEOUT (every CC_ANNOUNCE_EVERY seconds). It sets, CC_ROUTE_OK=1 last:
- CC_PRIORITY: the QUEUE_PRIO for the next entry, which keeps the caller's first-join place
  (waiting/priority.py; set as soon as it is known, so a later failure cannot lose it);
- CC_ANNOUNCE_EVERY: the queue's announce_frequency;
- CC_ANNOUNCE_ACTION: `stay` (back into the queue) or `callback` (request stored: the dialplan
  hangs up after this route, the caller has heard the confirmation).
AGI arguments (dialplans/extensions_ccengine.conf, [ccengine-wait]): the queue (else CC_QUEUE)
and the phase: `join` (before the first Queue()), `periodic` (Queue() timed out), `key` (the
caller pressed 2 in the queue: straight to the callback dialog). CC_QUEUE_POSITION is never
set: a Queue() position argument would override priorities (app_queue.c join_queue() inserts
at the position even ahead of higher-priority callers), while the priority alone keeps order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from twisted.logger import Logger

from ccengine.agi.channel import AgiChannel
from ccengine.calls.routing import caller_number, safe_call_id
from ccengine.config import QueueConfig, WaitingConfig
from ccengine.store.base import StoreUnavailable
from ccengine.waiting import estimator, priority
from ccengine.waiting.events import EstimateLedger, StaffingTracker, WaitingEvents
from ccengine.waiting.line import LinePlace, WaitingLine
from ccengine.waiting.metrics import WaitingMetrics
from ccengine.waiting.offer import CallbackDialog, Placement

log = Logger()


@dataclass
class AnnounceParts:
    config: WaitingConfig
    queues: Mapping[str, QueueConfig]
    prompter: Any
    line: WaitingLine
    dialog: CallbackDialog
    staffing: StaffingTracker
    ledger: EstimateLedger
    events: WaitingEvents
    metrics: WaitingMetrics
    clock: Any


class QueueAnnounceRoute:
    script = "queue-announce"

    def __init__(self, parts: AnnounceParts):
        self.p = parts

    async def handle(self, channel: AgiChannel) -> None:
        p = self.p
        queue = await self._queue(channel)
        if queue is None:
            log.warn("queue-announce without a configured queue on {ch}", ch=channel.env.channel)
            await self._finish(channel, None, "stay")
            return
        lang = p.prompter.language(await channel.get_variable("CC_LANGUAGE"))
        base = priority.base_of(await channel.get_variable("CC_PRIORITY"))
        uniqueid = safe_call_id(channel.env.uniqueid)
        now = p.clock.seconds()
        try:
            place = await p.line.announce(queue, uniqueid, base, now)
        except StoreUnavailable as exc:
            # No place, no callback: say so and keep the caller queued (issue 8, item 12).
            log.warn("line unavailable for {queue}: {exc}", queue=queue, exc=exc)
            p.metrics.announcements.labels(queue, "unavailable").inc()
            await p.prompter.play(channel, "callback_unavailable", lang)
            await self._finish(channel, queue, "stay")
            return
        await channel.set_variable("CC_PRIORITY", str(place.priority))
        p.events.remember(uniqueid, queue)
        estimate = estimator.estimate_wait(place.position, p.staffing.available(queue),
                                           place.talk_times)
        p.ledger.announced(uniqueid, queue, now, estimate)
        if self._phase(channel) == "key" and p.config.offer_callback:
            # The caller pressed 2 while queued (exit context ccengine-qexit, capture ami7):
            # they asked for the callback already; no announcement first.
            choice = "2"
        else:
            choice = await self._announce(channel, lang, place, estimate)
        action = "stay"
        if choice == "2" and p.config.offer_callback:
            action = await self._callback(channel, lang, place, estimate)
        p.metrics.announcements.labels(queue, {"1": "stay", "2": action}.get(choice, "none")).inc()
        await self._finish(channel, queue, action)

    async def on_watchdog(self, channel: AgiChannel) -> None:
        """The engine stalled: back into the queue at once (CC_PRIORITY, if set, is kept)."""
        await channel.set_variable("CC_ANNOUNCE_ACTION", "stay")
        await channel.acknowledge()

    # --- steps ----------------------------------------------------------------------------
    async def _queue(self, channel: AgiChannel) -> str | None:
        args = channel.env.args
        queue = args[0] if args and args[0] else await channel.get_variable("CC_QUEUE")
        return queue if queue in self.p.queues else None

    @staticmethod
    def _phase(channel: AgiChannel) -> str:
        """The dialplan's second argument: join, periodic or key."""
        args = channel.env.args
        return args[1] if len(args) > 1 else ""

    async def _announce(self, channel: AgiChannel, lang: str, place: LinePlace,
                        estimate: float | None) -> str:
        prompter = self.p.prompter
        keys = "12" if self.p.config.offer_callback else ""
        if estimate is None:
            digit = await prompter.play(channel, "position_only", lang, keys,
                                        position=place.position)
            digit = digit or await prompter.play(channel, "no_estimate", lang, keys)
        else:
            digit = await prompter.play(channel, "position_announce", lang, keys,
                                        position=place.position,
                                        wait_minutes=estimator.spoken_minutes(estimate))
        if digit or not keys:
            return digit
        return await prompter.ask(channel, "keep_waiting_or_callback", lang, max_digits=1,
                                  timeout_ms=int(self.p.config.offer_timeout * 1000))

    async def _callback(self, channel: AgiChannel, lang: str, place: LinePlace,
                        estimate: float | None) -> str:
        placement = Placement(place.queue, place.priority, place.joined,
                              replaces_caller=place.uniqueid)
        result = await self.p.dialog.run(channel, lang, caller_number(channel.env.caller_number),
                                         place.uniqueid, placement)
        if result.outcome != "stored":
            return "stay"
        self.p.events.callers.pop(place.uniqueid, None)
        self.p.ledger.forget(place.uniqueid)
        # The request is stored: set the outcome before the last prompt, so a hang-up during
        # it changes nothing.
        await channel.set_variable("CC_ANNOUNCE_ACTION", "callback")
        if estimate is None:
            await self.p.prompter.play(channel, "callback_stored_no_estimate", lang)
        else:
            await self.p.prompter.play(channel, "callback_stored", lang,
                                       wait_minutes=estimator.spoken_minutes(estimate))
        return "callback"

    async def _finish(self, channel: AgiChannel, queue: str | None, action: str) -> None:
        if queue is not None:
            every = self.p.queues[queue].announce_frequency
            await channel.set_variable("CC_ANNOUNCE_EVERY", str(every))
        await channel.set_variable("CC_ANNOUNCE_ACTION", action)
        await channel.acknowledge()


class ClosedHoursOffer:
    """`offer_when_closed` for the hotline (calls/hotline.py): a callback when we open."""

    def __init__(self, parts: AnnounceParts):
        self.p = parts

    async def offer_when_closed(self, channel: AgiChannel, lang: str, number: str,
                                queue: str, call_id: str) -> bool:
        p = self.p
        if not p.config.offer_callback or queue not in p.queues:
            return False
        digit = await p.prompter.ask(channel, "closed_callback_offer", lang, max_digits=1,
                                     timeout_ms=int(p.config.offer_timeout * 1000))
        if digit != "1":
            return False
        try:
            seq = await p.line.next_seq(queue)
        except StoreUnavailable as exc:
            log.warn("closed-hours callback not possible: {exc}", exc=exc)
            await p.prompter.play(channel, "callback_unavailable_closed", lang)
            return False
        now = p.clock.seconds()
        # Outside hours nobody waits: the request's place is the moment it is made.
        placement = Placement(queue, priority.queue_priority(0, seq), now)
        result = await p.dialog.run(channel, lang, number, call_id, placement)
        if result.outcome != "stored":
            return False
        await p.prompter.play(channel, "callback_stored_when_open", lang)
        return True

