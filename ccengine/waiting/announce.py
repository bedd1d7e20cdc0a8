"""The queue-announce route (agi://engine/queue-announce) and the closed-hours callback offer.

The dialplan puts a routed caller into Queue() at once and runs this route every time Queue()
returns with QUEUESTATUS=TIMEOUT (after CC_ANNOUNCE_EVERY seconds of waiting, phase
`periodic`) or the caller pressed 2 in the queue (exit context ccengine-qexit, phase `key`:
straight to the callback dialog). It sets, CC_ROUTE_OK=1 last:
- CC_ANNOUNCE_EVERY: the queue's announce_frequency;
- CC_ANNOUNCE_ACTION: `stay` (back into the queue) or `callback` (request stored: the dialplan
  hangs up after this route, the caller has heard the confirmation).
AGI arguments (dialplans/extensions_ccengine.conf, [ccengine-wait]): the queue (else CC_QUEUE),
the phase, the QUEUE_PRIO the caller queues with and the epoch of its first queue entry
(CC_WAIT_SINCE). The dialplan owns the caller's place (waiting/priority.py): the engine never
changes the priority, it files the caller in its line and a callback under that value, so a
callback keeps the place Asterisk gave the caller at the first entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Mapping

from twisted.logger import Logger

from ccengine.agi.channel import AgiChannel
from ccengine.calls.routing import caller_number, safe_call_id
from ccengine.config import QueueConfig, WaitingConfig
from ccengine.store.base import StoreUnavailable
from ccengine.waiting import estimator, priority
from ccengine.queues.picture import QueuePicture
from ccengine.waiting.events import EstimateLedger, WaitingEvents
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
    picture: QueuePicture          # staffing per queue (the one picture of Asterisk's queues)
    ledger: EstimateLedger
    events: WaitingEvents
    metrics: WaitingMetrics
    clock: Any
    # Told the Asterisk Uniqueid of a caller who took a callback (queue statistics: that
    # caller's hang-up is not an abandon).
    on_callback: Callable[[str], None] = lambda uniqueid: None


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
        uniqueid = safe_call_id(channel.env.uniqueid)
        now = p.clock.seconds()
        prio, joined = await self._place(channel, now)
        try:
            place = await p.line.announce(queue, uniqueid, prio, joined, now)
        except StoreUnavailable as exc:
            # No place, no callback: back into the queue at once (the caller is out of the
            # queue while this route runs, at most redis.timeout so far; the next announcement
            # tries again). Only a caller who pressed 2 for a callback hears that it is not
            # possible now: that answers their request.
            log.warn("line unavailable for {queue}: {exc}", queue=queue, exc=exc)
            p.metrics.announcements.labels(queue, "unavailable").inc()
            if self._phase(channel) == "key" and p.config.offer_callback:
                await p.prompter.play(channel, "callback_unavailable", lang)
            await self._finish(channel, queue, "stay")
            return
        p.events.remember(uniqueid, queue)
        estimate = estimator.estimate_wait(place.position, p.picture.staffing(queue),
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
        """The engine stalled: back into the queue at once (the dialplan keeps the place)."""
        await channel.set_variable("CC_ANNOUNCE_ACTION", "stay")
        await channel.acknowledge()

    # --- steps ----------------------------------------------------------------------------
    async def _queue(self, channel: AgiChannel) -> str | None:
        args = channel.env.args
        queue = args[0] if args and args[0] else await channel.get_variable("CC_QUEUE")
        return queue if queue in self.p.queues else None

    async def _place(self, channel: AgiChannel, now: float) -> tuple[int, float]:
        """The QUEUE_PRIO and first-entry epoch the dialplan passed (arguments 3 and 4). A
        dialplan that passes none (older include) or garbage: the place as the dialplan would
        compute it for an entry now, from the business priority in CC_PRIORITY."""
        args = channel.env.args
        prio = priority.parse(args[2]) if len(args) > 2 else None
        joined = _epoch(args[3] if len(args) > 3 else "", now)
        if prio is None:
            base = priority.base_of(await channel.get_variable("CC_PRIORITY"))
            prio = priority.queue_priority(base, joined, self.p.config.place_rollover)
        return prio, joined

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
        self.p.on_callback(channel.env.uniqueid)
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
        now = p.clock.seconds()
        # Outside hours nobody waits: the request's place is the moment it is made.
        placement = Placement(queue, priority.queue_priority(0, now, p.config.place_rollover),
                              now)
        result = await p.dialog.run(channel, lang, number, call_id, placement)
        if result.outcome != "stored":
            return False
        await p.prompter.play(channel, "callback_stored_when_open", lang)
        return True


def _epoch(text: str, now: float) -> float:
    """A first-entry epoch from the dialplan (digits, within the last day and not in the
    future beyond clock skew), else `now`."""
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return now
    value = float(text)
    return value if now - 86400 <= value <= now + 60 else now
