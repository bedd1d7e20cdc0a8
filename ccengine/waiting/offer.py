"""The callback dialog: which number, confirmed, then stored, with a spoken answer every time.

Outcomes (`OfferResult.outcome`): `stored` (the caller hears when to expect the call),
`declined` (no key, or the caller gave up), `rejected` (the number may not be called: spoken
error, nothing stored), `unavailable` (Redis did not answer: spoken apology, nothing stored,
the caller goes back to the queue). A hang-up anywhere raises CallerHungUp before the single
atomic store, so nothing is ever half-stored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from ccengine.config import WaitingConfig
from ccengine.store.base import StoreUnavailable
from ccengine.waiting.callbacks import CallbackStore, StoredCallback
from ccengine.waiting.metrics import WaitingMetrics
from ccengine.waiting.numbers import NumberRejected, check_callback_number

log = Logger()


@dataclass(frozen=True)
class OfferResult:
    outcome: str
    stored: StoredCallback | None = None


@dataclass(frozen=True)
class Placement:
    """Where the callback goes in line: the caller's own place, or a new one."""
    queue: str
    priority: int
    joined: float
    replaces_caller: str = ""


class CallbackDialog:
    def __init__(self, config: WaitingConfig, prompter: Any, callbacks: CallbackStore,
                 metrics: WaitingMetrics, clock: Any):
        self.config = config
        self.prompter = prompter
        self.callbacks = callbacks
        self.metrics = metrics
        self.clock = clock

    @property
    def timeout_ms(self) -> int:
        return int(self.config.offer_timeout * 1000)

    async def run(self, channel: Any, lang: str, caller_id: str, call_id: str,
                  placement: Placement) -> OfferResult:
        """Confirm or take a number, then store the request (one atomic Redis step)."""
        number = await self.choose_number(channel, lang, caller_id)
        if number is None:
            return OfferResult("declined")
        if number == "":
            return OfferResult("rejected")
        try:
            stored = await self.callbacks.request(
                number, placement.queue, lang, call_id, placement.priority, placement.joined,
                self.clock.seconds(), replaces_caller=placement.replaces_caller)
        except NumberRejected as exc:
            self.metrics.rejected.labels(exc.reason).inc()
            await self.prompter.play(channel, "callback_invalid_number", lang)
            return OfferResult("rejected")
        except StoreUnavailable as exc:
            log.warn("callback not stored, offer withdrawn: {exc}", exc=exc)
            await self.prompter.play(channel, "callback_unavailable", lang)
            return OfferResult("unavailable")
        self.metrics.requested.labels(placement.queue).inc()
        if not stored.created:
            await self.prompter.play(channel, "callback_updated", lang)
        return OfferResult("stored", stored)

    async def choose_number(self, channel: Any, lang: str, caller_id: str) -> str | None:
        """A confirmed, well-formed number; None when the caller gave up, '' after a refused
        number (the error has been spoken)."""
        candidate = self._acceptable(caller_id)
        for _ in range(2):
            if candidate is None:
                entered = await self.prompter.ask(
                    channel, "callback_enter_number", lang,
                    max_digits=self.config.max_number_digits + 1, timeout_ms=self.timeout_ms)
                if not entered:
                    return None
                try:
                    candidate = check_callback_number(entered, self.config)
                except NumberRejected as exc:
                    self.metrics.rejected.labels(exc.reason).inc()
                    await self.prompter.play(channel, "callback_invalid_number", lang)
                    return ""
            choice = await self.prompter.ask(channel, "callback_confirm_number", lang,
                                             max_digits=1, timeout_ms=self.timeout_ms,
                                             number=candidate)
            if choice == "1":
                return candidate
            if choice != "2":
                return None
            candidate = None
        return None

    def _acceptable(self, caller_id: str) -> str | None:
        if not caller_id:
            return None
        try:
            return check_callback_number(caller_id, self.config)
        except NumberRejected:
            return None   # an unusable caller ID is not an error: ask for a number instead
