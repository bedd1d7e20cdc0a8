"""Feature codes dialled from the agents' SIP phones (agi://engine/agent-login ... agent-unpause).

The phone is the channel: `agi_channel` `PJSIP/1003-00000001` is phone 1003, authenticated by
Asterisk; caller ID is never used. The dialplan (dialplans/extensions_ccengine.conf,
[ccengine-agent-feature]) passes `${CHANNEL(endpoint)}` as agi_arg_1 and the pause reason code
as agi_arg_2; a first argument that disagrees with the channel is refused. Whoever dials
logs in the phone they dial from, so nobody logs in for somebody else.

Every refusal (unknown agent, wrong PIN, locked, agent logged in elsewhere, phone used by
another agent, staffing) is spoken, changes nothing, is logged and counted. The route sets
CC_ROUTE_OK=1 once it has told the agent what happened; without it the dialplan plays
Asterisk's "an error has occurred".
"""
from __future__ import annotations

import math
import re
import secrets
from typing import Any
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from ccengine.agents.actions import MemberActions
from ccengine.agents.directory import AGENT_NUMBER_RE, AgentSession, hash_pin, verify_pin
from ccengine.agents.state import MemberState
from ccengine.ami.protocol import AmiError
from ccengine.config import AgentsConfig
from ccengine.store import keys

log = Logger()


_UNKNOWN_AGENT_HASH: list[str] = []


def unknown_agent_hash() -> str:
    """A PIN hash no PIN matches, checked for unknown agent numbers so that they cost the same
    time as a wrong PIN (made once, on first use)."""
    if not _UNKNOWN_AGENT_HASH:
        _UNKNOWN_AGENT_HASH.append(hash_pin(f"{secrets.randbelow(10 ** 12):012d}"))
    return _UNKNOWN_AGENT_HASH[0]


def check_pin_in_thread(pin: str, stored: str) -> Deferred:
    """verify_pin in the reactor's thread pool: PBKDF2 with 120k iterations takes tens of
    milliseconds (47 ms measured), which on the reactor every caller's AGI command would wait."""
    return deferToThread(verify_pin, pin, stored)


class FeatureCodes:
    def __init__(self, settings: AgentsConfig, directory: Any, store: Any, actions: MemberActions,
                 staffing: Any, prompter: Any, metrics: Any, clock: Any,
                 check_pin: Callable[[str, str], Deferred] = check_pin_in_thread):
        self.settings = settings
        self.directory = directory
        self.store = store
        self.actions = actions
        self.staffing = staffing
        self.prompter = prompter
        self.metrics = metrics
        self.clock = clock
        self.check_pin = check_pin
        tech = settings.interface_template.split("/", 1)[0]
        # Channel names are <tech>/<endpoint>-<8 hex digits> (a_answered: PJSIP/1003-00000001).
        self._channel_re = re.compile("^" + re.escape(tech) + r"/([A-Za-z0-9_]{1,40})-[0-9a-f]{8}$")

    def routes(self) -> dict[str, Any]:
        return {"agent-login": FeatureRoute(self.login), "agent-logout": FeatureRoute(self.logout),
                "agent-pause": FeatureRoute(self.pause), "agent-unpause": FeatureRoute(self.unpause)}

    # --- helpers ----------------------------------------------------------------------------
    def phone_of(self, channel: Any, check_arg: bool = True) -> str | None:
        """The phone the channel belongs to; with check_arg, agi_arg_1 must name the same one."""
        match = self._channel_re.fullmatch(channel.env.channel)
        if match is None:
            return None
        args = channel.env.args
        if check_arg and args and args[0] and args[0] != match.group(1):
            return None
        return match.group(1)

    def interface(self, phone: str) -> str:
        return self.settings.interface_template.format(phone=phone)

    @property
    def timeout_ms(self) -> int:
        return int(self.settings.digit_timeout * 1000)

    async def _done(self, channel: Any, prompt: str, lang: str, **values: Any) -> None:
        await self.prompter.play(channel, prompt, lang, **values)
        await channel.acknowledge()

    def _language(self, channel: Any, record: Any = None) -> str:
        if record is not None and record.languages:
            return self.prompter.language(record.languages[0])
        return self.prompter.language(channel.env.language)

    async def _phone_session(self, channel: Any, script: str) -> tuple[str | None, Any]:
        phone = self.phone_of(channel)
        if phone is None:
            log.warn("{script} from {channel!r:.60}: not an agent phone", script=script,
                     channel=channel.env.channel)
            return None, None
        return phone, await self.directory.session_on_phone(phone)

    # --- login ------------------------------------------------------------------------------
    async def login(self, channel: Any) -> None:
        phone = self.phone_of(channel)
        lang = self._language(channel)
        if phone is None:
            return self._attempt("not_a_phone", "", channel.env.channel)
        if not self.actions.available:
            # Without AMI no phone can join a queue: refuse before anything is written.
            self._attempt("error", "", phone)
            log.error("agent login refused on phone {phone}: the engine runs without AMI",
                      phone=phone)
            return await self._done(channel, "technical_difficulty", lang)
        number = await self.prompter.ask(channel, "agent_login_enter_number", lang, 8,
                                         self.timeout_ms)
        if not number:
            self._attempt("no_input", "", phone)
            return await channel.acknowledge()
        valid = AGENT_NUMBER_RE.fullmatch(number) is not None
        record = await self.directory.get(number) if valid else None
        lang = self._language(channel, record)
        settings = self.settings
        # The attempt is counted before the PIN is checked (one script): simultaneous sessions
        # for one agent cannot all pass; one phone cannot try more than its own limit.
        verdict, value = ("ok", 0)
        if valid:
            verdict, value = await self.directory.pin_attempt(
                number, phone, settings.max_pin_failures, settings.max_pin_attempts_per_phone,
                settings.lockout_seconds)
        if verdict != "ok":
            self._attempt("locked" if verdict == "locked" else "phone_limited", number, phone)
            seconds = value if verdict == "locked" and value > 0 else settings.lockout_seconds
            return await self._done(channel, "agent_login_locked", lang,
                                    lock_minutes=max(1, math.ceil(seconds / 60)))
        pin = await self.prompter.ask(channel, "agent_login_enter_pin", lang, 12, self.timeout_ms)
        # An unknown agent number hears the same as a wrong PIN, after the same PIN question
        # and the same hashing work: nobody learns which numbers exist.
        right = await self.check_pin(pin, record.pin_hash if record else unknown_agent_hash())
        if not right or record is None:
            if valid and await self.directory.pin_failed(number, value, settings.max_pin_failures,
                                                         settings.lockout_seconds):
                self._attempt("locked", number, phone)
                return await self._done(channel, "agent_login_locked", lang, lock_minutes=max(
                    1, math.ceil(settings.lockout_seconds / 60)))
            self._attempt("wrong_pin" if record else "unknown_agent", number, phone)
            return await self._done(channel, "agent_login_failed", lang)
        await self.directory.pin_ok(number, phone)
        session = AgentSession(number, phone, self.interface(phone), self.clock.seconds(),
                               dict(record.queues))
        result = await self.directory.claim(session)
        self._attempt(result, number, phone)
        if result == "elsewhere":
            return await self._done(channel, "agent_login_elsewhere", lang)
        if result == "phone_in_use":
            return await self._done(channel, "agent_login_phone_in_use", lang)
        if result == "ok":
            await self._add_to_queues(session)
        await self._done(channel, "agent_login_ok", lang, agent=number)

    async def _add_to_queues(self, session: AgentSession) -> None:
        for queue, penalty in sorted(session.queues.items()):
            try:
                await self.actions.add(queue, session.interface, session.number, penalty)
            except AmiError as exc:
                # The login stands in Redis; the resync after the next AMI login adds the member.
                log.error("QueueAdd {queue} for agent {agent} failed: {exc}", queue=queue,
                          agent=session.number, exc=exc)
                continue
            await self.store.put(session.number, queue,
                                 MemberState("idle", "", self.clock.seconds()))

    def _attempt(self, result: str, number: str, phone: str) -> None:
        self.metrics.login(result)
        emit = log.info if result in ("ok", "already") else log.warn
        emit("agent login {result}: agent {agent!r:.12} on phone {phone!r:.60}",
             result=result, agent=number, phone=phone)

    # --- logout -----------------------------------------------------------------------------
    async def logout(self, channel: Any) -> None:
        phone, session = await self._phone_session(channel, "agent-logout")
        lang = self._language(channel)
        if phone is None:
            return
        if session is None:
            return await self._done(channel, "agent_not_logged_in", lang)
        await self.log_out(session)
        await self._done(channel, "agent_logout_ok", lang)

    async def log_out(self, session: AgentSession) -> None:
        """End a login: out of every queue, the session released (phone or console)."""
        for queue in sorted(session.queues):
            try:
                await self.actions.remove(queue, session.interface)
            except AmiError as exc:
                # The member stays in Asterisk; the next resync removes it (no login in Redis).
                log.error("QueueRemove {queue} for agent {agent} failed: {exc}", queue=queue,
                          agent=session.number, exc=exc)
        await self.directory.release(session)
        await self.store.drop(session.number)
        self.metrics.logouts.inc()
        log.info("agent {agent} logged out from phone {phone}", agent=session.number,
                 phone=session.phone)

    # --- pause / unpause --------------------------------------------------------------------
    async def pause(self, channel: Any) -> None:
        phone, session = await self._phone_session(channel, "agent-pause")
        lang = self._language(channel)
        if phone is None:
            return
        if session is None:
            self.metrics.pause_requests.labels("not_logged_in").inc()
            return await self._done(channel, "agent_not_logged_in", lang)
        args = channel.env.args
        code = args[1] if len(args) > 1 and args[1] else await self.prompter.ask(
            channel, "agent_pause_enter_reason", lang, 2, self.timeout_ms)
        reason = self.settings.pause_reasons.get(code)
        if reason is None:
            self.metrics.pause_requests.labels("invalid_reason").inc()
            return await self._done(channel, "agent_pause_invalid_reason", lang)
        refused = await self.staffing.refused(session)
        if refused:
            log.warn("pause of agent {agent} refused: {queues} would be understaffed",
                     agent=session.number, queues=",".join(refused))
            self.metrics.pause_requests.labels("refused_staffing").inc()
            return await self._done(channel, "agent_pause_refused_staffing", lang)
        if not await self.set_paused(session, True, reason):
            self.metrics.pause_requests.labels("error").inc()
            return
        self.metrics.pause_requests.labels("paused").inc()
        self.metrics.paused(reason)
        await self._done(channel, "agent_pause_ok", lang)

    async def unpause(self, channel: Any) -> None:
        phone, session = await self._phone_session(channel, "agent-unpause")
        lang = self._language(channel)
        if phone is None:
            return
        if session is None:
            return await self._done(channel, "agent_not_logged_in", lang)
        if await self.set_paused(session, False, ""):
            await self._done(channel, "agent_unpause_ok", lang)

    async def set_paused(self, session: AgentSession, paused: bool, reason: str) -> bool:
        """QueuePause in every queue of the agent and the stored state; False when AMI failed."""
        try:
            await self.actions.pause(session.interface, paused, reason)
        except AmiError as exc:
            log.error("QueuePause for agent {agent} failed: {exc}", agent=session.number, exc=exc)
            return False
        now = self.clock.seconds()
        state = MemberState("paused", reason, now) if paused else MemberState("idle", "", now)
        for queue in sorted(session.queues):
            await self.store.put(session.number, queue, state)
        await self.store.conn.call(lambda r: r.delete(keys.agent_no_answer(session.number)))
        log.info("agent {agent} {what} ({reason})", agent=session.number,
                 what="paused" if paused else "unpaused", reason=reason)
        return True


class FeatureRoute:
    """An agent-side AGI route (agi.server.Route) around one handler. The watchdog has nothing
    to undo: CC_ROUTE_OK stays unset and the dialplan plays its error message (feature codes)
    or skips the announcement (connect hooks); the call goes on either way."""

    def __init__(self, handler: Any):
        self._handler = handler

    async def handle(self, channel: Any) -> None:
        await self._handler(channel)

    async def on_watchdog(self, channel: Any) -> None:
        return None
