"""The hotline route (agi://engine/hotline): greet, recognise, ask, route.

Steps, in order:
1. recognise the caller by number (one Redis round trip, which also reads the size of the
   caller's complaint index); Redis down = an unknown caller, the call still goes on;
2. blocked numbers hear a polite message and are hung up (counted, recorded);
3. greeting and menu (1 inquiry, 2 lookup, 3 complaint, 0 other; the language key switches
   language); a key pressed during the greeting counts (type-ahead); no input or a wrong key
   plays the menu again while that fits `ivr.no_input_budget`, then the default route;
4. outside the chosen queue's hours: the hours, a callback offer if the waiting-callers
   feature is wired, then hang up;
5. otherwise set the route variables and CC_ROUTE_OK=1 *last*, so the dialplan never acts on a
   half-written route. The session then ends and the dialplan goes on to Queue(); the call
   record is written meanwhile (second Redis round trip, off the caller's path: the caller
   never waits for it, shutdown does; runtime/pending.py).
"""
from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from typing import Any, Protocol
from collections.abc import Callable

from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.python.failure import Failure

from ccengine.agi.channel import AgiChannel
from ccengine.calls import hours, routing
from ccengine.calls.metrics import HotlineMetrics
from ccengine.config import CallersConfig, CompanyConfig, IvrConfig, QueueConfig
from ccengine.store.base import StoreUnavailable
from ccengine.calls.records import CallRecordStore
from ccengine.calls.customers import CallerProfile, CustomerStore
from ccengine.runtime.pending import PendingWrites

log = Logger()
# Keys that end the greeting early (type-ahead): any key, as during the menu itself.
MENU_KEYS = "0123456789*#"


class Prompter(Protocol):
    async def play(self, channel: Any, name: str, lang: str, escape_digits: str = "",
                   **values: Any) -> str: ...

    async def ask(self, channel: Any, name: str, lang: str, max_digits: int, timeout_ms: int,
                  **values: Any) -> str: ...


class RepeatComplaints(Protocol):
    """Finds a caller's open or recent complaint (the complaints feature provides it)."""
    queue: str
    priority: int

    async def check(self, number: str) -> str | None: ...

    def index_key(self, number: str) -> str | None: ...

    async def check_index(self, number: str, indexed: int) -> str | None: ...


class ClosedHoursOffer(Protocol):
    """Offered outside business hours (the waiting-callers feature provides it)."""

    async def offer_when_closed(self, channel: AgiChannel, lang: str, number: str,
                                queue: str, call_id: str) -> bool: ...


@dataclass
class HotlineSettings:
    company: CompanyConfig
    ivr: IvrConfig
    callers: CallersConfig
    queues: dict[str, QueueConfig]


class HotlineRoute:
    script = "hotline"

    def __init__(self, settings: HotlineSettings, customers: CustomerStore,
                 records: CallRecordStore, prompter: Prompter, metrics: HotlineMetrics,
                 clock: Any, writes: PendingWrites,
                 closed_offer: ClosedHoursOffer | None = None,
                 repeat: RepeatComplaints | None = None,
                 availability: Callable[[str], int | None] | None = None):
        self.settings = settings
        self.customers = customers
        self.records = records
        self.prompter = prompter
        self.metrics = metrics
        self.spool: Any = None      # calls/spool.py RecordSpool, set by calls/feature.py
        # The blocklist file's numbers, for when Redis cannot answer (calls/feature.py).
        self.file_blocklist: Callable[[], frozenset[str]] = frozenset
        self.clock = clock
        self.writes = writes
        self.closed_offer = closed_offer
        self.repeat = repeat
        # queue -> agents staffing it (None = not known yet); queues.picture.QueuePicture.staffing
        self.availability = availability

    # --- the route ------------------------------------------------------------------------
    async def handle(self, channel: AgiChannel) -> None:
        env = channel.env
        started = self.clock.seconds()
        number = routing.caller_number(env.caller_number)
        call_id = routing.safe_call_id(env.uniqueid)
        # The repeat-complaint index rides in the recognition pipeline: one round trip.
        profile = await self._recognise(number)
        ticket_id = await self._repeat_ticket(profile)
        lang = self._language(profile, env.dnid)
        await channel.set_language(lang)
        record: dict[str, Any] = {"started": f"{started:.3f}", "caller": number, "tier": profile.tier,
                  "customer": profile.name, "language": lang, "channel": env.channel}

        if profile.blocked:
            await self.prompter.play(channel, "blocked", lang)
            await self._finish_without_queue(channel, "blocked", call_id, record, started)
            await channel.hangup()
            return

        decision, lang = await self._menu(channel, profile, lang, started)
        if ticket_id and self.repeat is not None:
            # A caller with an open or recent complaint goes to the complaint queue, ahead.
            decision = dataclasses.replace(decision, queue=self.repeat.queue,
                                           priority=decision.priority + self.repeat.priority)
        decision = self._by_language(decision, lang)
        queue = self.settings.queues[decision.queue]
        now = hours.local_now(self.clock.seconds(), self.settings.company.timezone)
        if not hours.is_open(queue, now):
            await self.prompter.play(channel, "closed", lang,
                                     open_time=queue.open, close_time=queue.close)
            record.update(queue=decision.queue, category=decision.category)
            if self.closed_offer and number:
                await self.closed_offer.offer_when_closed(channel, lang, number, decision.queue,
                                                          call_id)
            await self._finish_without_queue(channel, "closed", call_id, record, started)
            await self.prompter.play(channel, "goodbye", lang)
            return

        if ticket_id:
            await channel.set_variable("CC_TICKET_ID", ticket_id)
            record["ticket"] = ticket_id
        if queue.record:
            # The notice the law asks for, then the file name the agent's channel records to
            # (dialplan [ccengine-agent-connect]; inherited, hence the __ prefix).
            await self.prompter.play(channel, "recording_notice", lang)
            await channel.set_variable("__CC_RECORD_FILE", call_id)
            record["recording"] = f"{call_id}.wav"
        await self._set_route(channel, decision, profile, lang, call_id)
        self.metrics.calls.labels("routed").inc()
        self.metrics.routed.labels(decision.queue, decision.kind).inc()
        record.update(queue=decision.queue, category=decision.category,
                      priority=decision.priority, outcome="queued", language=lang)
        self._save(call_id, started, record)

    async def on_watchdog(self, channel: AgiChannel) -> None:
        """The engine stalled: route to the default queue at once (the dialplan would anyway)."""
        self.metrics.calls.labels("default_route").inc()
        decision = routing.default_route(self.settings.ivr)
        for name, value in decision.variables() + [("CC_ACTION", "queue")]:
            await channel.set_variable(name, value)
        await channel.acknowledge()

    # --- steps ----------------------------------------------------------------------------
    async def _recognise(self, number: str) -> CallerProfile:
        if not number:
            return CallerProfile(number="")
        index = self.repeat.index_key(number) if self.repeat is not None else None
        try:
            return await self.customers.lookup(number, (index,) if index else ())
        except StoreUnavailable as exc:
            if number in self.file_blocklist():
                # Redis cannot say; the blocklist file can (callers.block_from_file_when_redis_down).
                log.warn("caller lookup failed ({exc}); {n} is on the blocklist file: refused",
                         exc=exc, n=number)
                self.metrics.blocked_from_file.inc()
                return CallerProfile(number=number, blocked=True)
            log.warn("caller lookup failed, treating the caller as new: {exc}", exc=exc)
            return CallerProfile(number=number)

    async def _repeat_ticket(self, profile: CallerProfile) -> str | None:
        """The caller's complaint ticket id, or None (also on errors); Redis is read again
        only when the index read with the lookup has entries."""
        if self.repeat is None or not profile.extra:
            return None
        try:
            return await self.repeat.check_index(profile.number, profile.extra[0])
        except StoreUnavailable as exc:
            log.warn("repeat complainant check failed: {exc}", exc=exc)
            return None

    def _by_language(self, decision: routing.RouteDecision, lang: str) -> routing.RouteDecision:
        """The queue's language queue for this caller, while it has an available agent."""
        target = self.settings.queues[decision.queue].language_queues.get(lang)
        if target and self.availability is not None and (self.availability(target) or 0) > 0:
            return dataclasses.replace(decision, queue=target)
        return decision

    def _language(self, profile: CallerProfile, dialled: str) -> str:
        """The caller's saved preference, else the called number's language, else the default."""
        company = self.settings.company
        if profile.language in company.languages:
            return profile.language
        return company.language_by_number.get(dialled, company.default_language)

    async def _menu(self, channel: AgiChannel, profile: CallerProfile, lang: str,
                    started: float) -> tuple[routing.RouteDecision, str]:
        """Greeting and menu. A key pressed during the greeting is the caller's choice
        (type-ahead: a caller who knows the menu is queued within a second or two). A menu
        play is retried (no input, wrong key, language switch) only while the retry would end
        within `ivr.no_input_budget` seconds of the call's start, measured by the previous
        try's own length; then the default route."""
        ivr = self.settings.ivr
        digit = await self.prompter.play(channel, "welcome", lang, MENU_KEYS)
        for _ in range(ivr.menu_tries):
            if not digit:
                tried = self.clock.seconds()
                digit = await self.prompter.ask(channel, "menu", lang, max_digits=1,
                                                timeout_ms=int(ivr.digit_timeout * 1000))
                took = self.clock.seconds() - tried
            else:
                took = 0.0
            if digit in ivr.options:
                return routing.from_menu(digit, ivr, profile, self.settings.callers), lang
            if digit and digit == ivr.language_key and len(self.settings.company.languages) > 1:
                lang = self._other_language(lang)
                self.metrics.language_switches.inc()
                await channel.set_language(lang)
                await self._remember_language(profile, lang)
            elif digit:
                await self.prompter.play(channel, "invalid_choice", lang)
            digit = ""
            if self.clock.seconds() - started + took > ivr.no_input_budget:
                break
        self.metrics.menu_defaulted.inc()
        return routing.from_menu(None, ivr, profile, self.settings.callers), lang

    async def _remember_language(self, profile: CallerProfile, lang: str) -> None:
        """A caller who switches language keeps it next time (known and new numbers alike)."""
        if not profile.number:
            return
        try:
            await self.customers.set_language(profile.number, lang)
        except StoreUnavailable as exc:
            log.warn("language preference not saved: {exc}", exc=exc)

    def _other_language(self, lang: str) -> str:
        first, second = self.settings.company.languages[:2]
        return second if lang == first else first

    async def _set_route(self, channel: AgiChannel, decision: routing.RouteDecision,
                         profile: CallerProfile, lang: str, call_id: str) -> None:
        variables = decision.variables() + [
            ("CC_CALL_ID", call_id),
            ("CC_CUSTOMER_TIER", profile.tier),
            ("CC_LANGUAGE", lang),
            ("CC_ACTION", "queue"),
        ]
        name = routing.display_name(profile.name)
        if name:
            variables.append(("CC_CUSTOMER_NAME", name))
        for var, value in variables:
            await channel.set_variable(var, value)
        await channel.acknowledge()

    async def _finish_without_queue(self, channel: AgiChannel, outcome: str, call_id: str,
                                    record: dict, started: float) -> None:
        self.metrics.calls.labels(outcome).inc()
        await channel.set_variable("CC_ACTION", "hangup")
        await channel.acknowledge()
        record["outcome"] = outcome
        self._save(call_id, started, record)

    def _save(self, call_id: str, started: float, record: dict) -> None:
        """Write the call record without holding the call: the route's decision is already
        acknowledged, and the session may end while Redis stores the record."""
        def created(result: object) -> object:
            if result != -1:
                return result
            # A record with this uniqueid exists: two sessions claimed one channel (a replay
            # or a hostile peer). Both are kept; the second under a suffixed id.
            other = f"{call_id[:48]}-dup-{secrets.token_hex(4)}"
            log.warn("call record {id} exists already: this one is kept as {other}",
                     id=call_id, other=other)
            record["duplicate_of"] = call_id
            return self.records.create(other, started, record)
        saving = self.records.create(call_id, started, record).addCallback(created)
        saving.addErrback(self._not_saved, call_id, started, record)
        self.writes.add(saving)

    def _not_saved(self, failure: Failure, call_id: str, started: float, record: dict) -> None:
        # Losing the record must not cost the call: it goes to the spool file (calls/spool.py),
        # written to Redis once Redis takes writes again; only if that fails too, the log line
        # keeps it.
        if self.spool is not None and self.spool.add(call_id, started, record):
            log.warn("call record {id} spooled ({exc})", id=call_id,
                     exc=failure.getErrorMessage() or failure.type.__name__)
        elif failure.check(StoreUnavailable, CancelledError):
            log.error("call record not stored ({exc}): {record}",
                      exc=failure.getErrorMessage() or failure.type.__name__, record=record)
        else:
            log.failure("call record not stored: {record}", failure, record=record)
