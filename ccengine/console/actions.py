"""What a supervisor can do from the console, each checked, done, and written to the audit log.

Every action takes the logged-in Account (never a name or phone from the request) and the
request's fields, validates each field against what exists (an agent logged in now, a caller
in the queue picture, a configured queue, a configured pause reason, a ticket id), and returns
an Outcome: ok, or refused with a message for the page. Operations accounts are refused
everything. Nothing from the request reaches AMI unvalidated; `ami.wire.Action` also refuses
CR/LF/NUL in any value.

Listen / whisper / barge: AMI Originate to the supervisor's own phone (their account's
`phone`, through agents.interface_template) running ChanSpy on the agent's channel.
ChanSpy(chanprefix,options) (Asterisk documentation, Dialplan Applications / ChanSpy): the
prefix is the agent's interface followed by "-" (PJSIP channel names are
`PJSIP/<endpoint>-<8 hex digits>`, capture a_answered), so phone 100 never matches 1001's
channel; options: b = only a channel in a bridged call, q = no beep or channel name spoken,
E = exit when the spied-on channel hangs up, S = stop when there is nothing to spy on; w adds
whisper (the supervisor talks to the agent only), B barge (talks to both).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from ccengine.ami.protocol import AmiError
from ccengine.complaints.tickets import (TicketError, TicketNotFound, check_owner, check_text,
                                         check_ticket_id)
from ccengine.console.accounts import Account
from ccengine.queues.picture import Caller
from ccengine.store import keys
from ccengine.store.base import RedisConnection, StoreUnavailable

log = Logger()
SPY_OPTIONS = {"listen": "bqES", "whisper": "bqESw", "barge": "bqESB"}
AGENT_RE = re.compile(r"^[0-9]{1,32}$")
CHANNEL_RE = re.compile(r"^[A-Za-z0-9/_.@;:+-]{1,120}$")
ORIGINATE_TIMEOUT_MS = 30000
NEEDS_AMI = frozenset({"listen", "whisper", "barge", "pause", "unpause", "move"})


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


class Refused(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class AuditLog:
    """Who did what, when, on which call: a capped Redis list of JSON entries, newest first."""

    def __init__(self, conn: RedisConnection, keep: int):
        self.conn = conn
        self.keep = keep

    def record(self, entry: dict) -> Any:
        text = json.dumps(entry, ensure_ascii=False, sort_keys=True)

        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.lpush(keys.CONSOLE_AUDIT, text)
                p.ltrim(keys.CONSOLE_AUDIT, 0, self.keep - 1)
                await p.execute()
        return self.conn.call(op)

    def recent(self, count: int = 20) -> Any:
        async def op(r):
            out = []
            for raw in await r.lrange(keys.CONSOLE_AUDIT, 0, count - 1):
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    out.append(entry)
            return out
        return self.conn.call(op)


class ConsoleActions:
    def __init__(self, config: Any, clock: Any, ami: Any, picture: Any, directory: Any,
                 states: Any, codes: Any, staffing: Any, complaints: Any, audit: AuditLog):
        self.config = config
        self.clock = clock
        self.ami = ami
        self.picture = picture
        self.directory = directory
        self.states = states
        self.codes = codes            # agents.login.FeatureCodes: set_paused, log_out
        self.staffing = staffing      # agents.staffing.StaffingGuard
        self.complaints = complaints  # complaints.service.Complaints
        self.audit = audit
        self._handlers = {
            "listen": self._spy, "whisper": self._spy, "barge": self._spy,
            "pause": self._pause, "unpause": self._unpause, "logout": self._logout,
            "move": self._move, "assign": self._assign, "resolve": self._resolve,
            "close": self._close,
        }

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._handlers)

    async def run(self, account: Account, action: str, fields: dict[str, str]) -> Outcome:
        """Do `action` for `account`; every attempt, refused or not, is audited."""
        handler = self._handlers.get(action)
        target = (fields.get("agent") or fields.get("caller") or fields.get("ticket") or "")[:64]
        if handler is None:
            outcome = Outcome(False, "unknown action")
        elif not account.can_act:
            outcome = Outcome(False, "refused: your account is read-only (operations)")
        elif action in NEEDS_AMI and not (self.ami is not None and self.ami.connected):
            outcome = Outcome(False, "refused: the engine is not connected to Asterisk (AMI)")
        else:
            try:
                outcome = Outcome(True, await handler(account, action, fields))
            except Refused as exc:
                outcome = Outcome(False, f"refused: {exc.message}")
            except (AmiError, StoreUnavailable) as exc:
                log.warn("console action {a} by {u} failed: {e}", a=action, u=account.name, e=exc)
                outcome = Outcome(False, f"failed: {exc}")
        entry = {"at": round(self.clock.seconds(), 3), "user": account.name, "action": action,
                 "target": target, "ok": outcome.ok, "message": outcome.message[:200]}
        for name in ("reason", "queue", "owner"):
            if fields.get(name):
                entry[name] = fields[name][:64]
        try:
            await self.audit.record(entry)
        except StoreUnavailable as exc:
            log.error("console audit entry not stored ({e}): {entry}", e=exc, entry=entry)
        log.info("console: {user} {action} {target}: {msg}", user=account.name, action=action,
                 target=target, msg=outcome.message)
        return outcome

    # --- agents ---------------------------------------------------------------------------
    async def _session(self, fields: dict[str, str]) -> Any:
        number = fields.get("agent", "")
        if not AGENT_RE.fullmatch(number):
            raise Refused("no such agent")
        session = await self.directory.session(number)
        if session is None:
            raise Refused(f"agent {number} is not logged in")
        return session

    async def _spy(self, account: Account, mode: str, fields: dict[str, str]) -> str:
        if not account.phone:
            raise Refused("your account has no phone (ccengine users add ... --phone)")
        session = await self._session(fields)
        on_call = any(ms.state == "on_call" for (number, _), ms in self.states.snapshot.items()
                      if number == session.number)
        if not on_call:
            raise Refused(f"agent {session.number} is not on a call")
        own = self.config.agents.interface_template.replace("{phone}", account.phone)
        theirs, mine = (self.ami.server_of_interface(session.interface),
                        self.ami.server_of_interface(own))
        if theirs != mine:
            # ChanSpy runs on the agent's Asterisk and dials the supervisor's phone from there.
            raise Refused(f"agent {session.number}'s phone is on {theirs}, yours on {mine}: "
                          f"use a phone registered to {theirs}")
        await self.ami.send_action("Originate", [
            ("Channel", own), ("Application", "ChanSpy"),
            ("Data", f"{session.interface}-,{SPY_OPTIONS[mode]}"),
            ("CallerID", f'"{mode} {session.number}" <{session.number}>'),
            ("Timeout", ORIGINATE_TIMEOUT_MS), ("Async", "true")])
        return f"{mode}: your phone {account.phone} rings, answer it to {mode} agent {session.number}"

    async def _pause(self, account: Account, action: str, fields: dict[str, str]) -> str:
        session = await self._session(fields)
        reason = self.config.agents.pause_reasons.get(fields.get("reason", ""))
        if reason is None:
            raise Refused("choose a pause reason")
        if fields.get("override") == "1":
            await self.directory.allow_pause(session.number, 60)
        refused = await self.staffing.refused(session)
        if refused:
            raise Refused(f"{', '.join(refused)} would drop below its minimum staffing "
                          "(tick 'override' to pause anyway)")
        if not await self.codes.set_paused(session, True, reason):
            raise Refused("Asterisk did not take the pause")
        return f"agent {session.number} paused ({reason})"

    async def _unpause(self, account: Account, action: str, fields: dict[str, str]) -> str:
        session = await self._session(fields)
        if not await self.codes.set_paused(session, False, ""):
            raise Refused("Asterisk did not take the unpause")
        return f"agent {session.number} unpaused"

    async def _logout(self, account: Account, action: str, fields: dict[str, str]) -> str:
        session = await self._session(fields)
        await self.codes.log_out(session)
        return f"agent {session.number} logged out"

    # --- callers --------------------------------------------------------------------------
    async def _move(self, account: Account, action: str, fields: dict[str, str]) -> str:
        caller: Caller | None = self.picture.callers.get(fields.get("caller", ""))
        if caller is None or not CHANNEL_RE.fullmatch(caller.channel):
            raise Refused("that caller is no longer waiting")
        target = fields.get("queue", "")
        if target not in self.config.queues:
            raise Refused("no such queue")
        if target == caller.queue:
            raise Refused(f"the caller is already in {target}")
        # The channel keeps CC_PRIORITY and CCENGINE_PLACE: the dialplan's withdraw path
        # ([ccengine-wait] n(withdrawn)) re-enters `target` with the same QUEUE_PRIO.
        await self.ami.on_server(caller.server).send_action("QueueWithdrawCaller", [
            ("Queue", caller.queue), ("Caller", caller.channel), ("WithdrawInfo", target)])
        return f"caller moved from {caller.queue} to {target}, keeping their place"

    # --- tickets --------------------------------------------------------------------------
    def _ticket_id(self, fields: dict[str, str]) -> str:
        try:
            return check_ticket_id(fields.get("ticket", ""))
        except TicketError as exc:
            raise Refused(str(exc)) from None

    async def _ticket(self, call: Any) -> str:
        try:
            ticket = await call
        except TicketNotFound:
            raise Refused("no such ticket") from None
        except TicketError as exc:
            raise Refused(str(exc)) from None
        return f"ticket {ticket.id}: {ticket.state}, owner {ticket.owner or '-'}"

    async def _assign(self, account: Account, action: str, fields: dict[str, str]) -> str:
        ticket_id = self._ticket_id(fields)
        try:
            owner = check_owner(fields.get("owner", ""))
        except TicketError as exc:
            raise Refused(str(exc)) from None
        return await self._ticket(self.complaints.assign(ticket_id, owner, by=account.name))

    async def _resolve(self, account: Account, action: str, fields: dict[str, str]) -> str:
        ticket_id = self._ticket_id(fields)
        try:
            outcome = check_text("outcome", fields.get("outcome", ""))
        except TicketError as exc:
            raise Refused(str(exc)) from None
        return await self._ticket(self.complaints.resolve(ticket_id, outcome, by=account.name))

    async def _close(self, account: Account, action: str, fields: dict[str, str]) -> str:
        ticket_id = self._ticket_id(fields)
        return await self._ticket(self.complaints.close(ticket_id, by=account.name))
