"""Warm escalation from a call: the agent presses the escalation feature code, the engine opens
(or reuses) the caller's ticket, escalates it to supervisor level and starts an attended
transfer of the call to the supervisor queue.

Mechanism (dialplans/extensions_ccengine.conf, docs/complaints.md):
1. features.conf `[applicationmap] escalate => *5,self,Gosub(ccengine-escalate,s,1),default`
   runs `AGI(agi://engine/escalate)` on the AGENT's channel while the caller hears music
   (docs.asterisk.org, Configuration/Features/Custom-Dynamic-Features: "self" runs the
   application on the channel that activated the feature).
2. This route opens/escalates the ticket, remembers the transfer in Redis
   (`cc:complaints:transfers`, caller channel -> ticket) and, `atxfer_delay` seconds after the
   AGI ended (DTMF injected by Atxfer would be eaten by a running AGI), sends AMI
   `Atxfer(Channel=<agent>, Context=ccengine-supervisor, Exten=5000)` (captured in ami8c_atxfer:
   the caller is put on hold with music, the agent is connected to the supervisor line first).
3. The outcome comes back as AMI events on the CALLER's channel (the transferee):
   - `AttendedTransfer` with `Result: Success` (ami8c_atxfer): the agent completed the transfer
     by hanging up; the caller talks to the supervisor.
   - `AttendedTransfer` with a failed result: the supervisor line hung up before the agent
     completed (no supervisor answered within the dialplan's Queue timeout); Asterisk moves the
     agent back to the caller (bridge_basic.c, TRANSFER_REBRIDGE: "The transferer channel is
     moved from the transfer target bridge to the transferee bridge ... A stasis transfer
     message is published indicating a failed attended transfer").
   - `Hangup` of the caller's channel before either: the caller hung up during the briefing
     (bridge_basic.c consulting_exit, STIMULUS_TRANSFEREE_HANGUP -> TRANSFER_FAIL; the agent
     and the supervisor stay connected).
   In every case the ticket stays escalated at supervisor level; the history says what happened.
"""
from __future__ import annotations

import json
import re
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ccengine.ami.protocol import AmiError
from ccengine.ami.wire import Message
from ccengine.complaints.repeat import RepeatComplainants
from ccengine.complaints.service import Complaints
from ccengine.complaints.tickets import TicketError, TicketNotFound
from ccengine.config import ComplaintsConfig
from ccengine.store import keys
from ccengine.store.base import RedisConnection, StoreUnavailable

log = Logger()
# Asterisk channel names: PJSIP/1003-00000001, Local/5000@ctx-00000003;1 (captures a_answered, ami8c).
CHANNEL_RE = re.compile(r"^[A-Za-z0-9]{1,16}/[A-Za-z0-9_@.+-]{1,80}(;[12])?$")
PHONE_CHANNEL_RE = re.compile(r"^PJSIP/([A-Za-z0-9_]{1,40})-[0-9a-f]{8}$")
_CALL_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_NUMBER_RE = re.compile(r"^\+?[0-9]{1,32}$")
_DIGITS_RE = re.compile(r"^[0-9]{1,20}$")


class TransferStore:
    """Warm escalations in progress: caller channel -> {ticket, agent_channel, agent, at}."""

    def __init__(self, conn: RedisConnection):
        self.conn = conn

    def put(self, caller_channel: str, value: dict) -> Deferred:
        return self.conn.call(lambda r: r.hset(keys.COMPLAINTS_TRANSFERS, caller_channel,
                                               json.dumps(value, sort_keys=True)))

    def take(self, caller_channel: str) -> Deferred:
        """Remove and return the entry (None if another event already took it)."""
        async def op(r):
            async with r.pipeline(transaction=True) as p:
                p.hget(keys.COMPLAINTS_TRANSFERS, caller_channel)
                p.hdel(keys.COMPLAINTS_TRANSFERS, caller_channel)
                raw, removed = await p.execute()
            return json.loads(raw) if raw and removed else None
        return self.conn.call(op)

    def peek(self, caller_channel: str) -> Deferred:
        async def op(r):
            raw = await r.hget(keys.COMPLAINTS_TRANSFERS, caller_channel)
            return json.loads(raw) if raw else None
        return self.conn.call(op)

    def channels(self) -> Deferred:
        return self.conn.call(lambda r: r.hkeys(keys.COMPLAINTS_TRANSFERS))


class WarmEscalation:
    """The `escalate` AGI route and the AMI side of the transfer it starts."""

    script = "escalate"

    def __init__(self, settings: ComplaintsConfig, complaints: Complaints,
                 transfers: TransferStore, repeat: RepeatComplainants, ami: Any, clock: Any,
                 call_records: Any = None, agent_directory: Any = None):
        self.settings = settings
        self.complaints = complaints
        self.transfers = transfers
        self.repeat = repeat
        self.ami = ami
        self.clock = clock
        self.call_records = call_records
        self.agent_directory = agent_directory
        self.pending: set[str] = set()      # caller channels with a transfer in progress
        self.last_transfer: Deferred | None = None

    # --- AGI route ------------------------------------------------------------------------
    async def handle(self, channel: Any) -> None:
        agent_channel = channel.env.channel
        match = PHONE_CHANNEL_RE.fullmatch(agent_channel)
        if match is None:
            log.warn("escalate from {ch!r:.60}: not an agent phone channel", ch=agent_channel)
            return          # no CC_ROUTE_OK: the dialplan plays its error sound
        agent = await self._agent_of(match.group(1))
        caller_channel = (await channel.get_variable("BRIDGEPEER")) or ""
        if not CHANNEL_RE.fullmatch(caller_channel):
            log.warn("escalate by {agent}: no caller bridged ({peer!r:.60})", agent=agent,
                     peer=caller_channel)
            return
        call_id = (await channel.get_variable("CHANNEL(linkedid)")) or ""
        record = await self._call_record(call_id)
        ticket_id = await self._ticket_for(record, call_id, agent)
        await self.transfers.put(caller_channel, {"ticket": ticket_id, "agent": agent,
                                                  "agent_channel": agent_channel,
                                                  "at": round(self.clock.seconds(), 3)})
        self.pending.add(caller_channel)
        await channel.set_variable("CC_TICKET_ID", ticket_id)
        await channel.acknowledge()
        self.clock.callLater(self.settings.atxfer_delay, self._start_transfer, caller_channel)

    async def on_watchdog(self, channel: Any) -> None:
        """Engine stalled: leave CC_ROUTE_OK unset; the agent hears the error and keeps the call."""

    async def _agent_of(self, phone: str) -> str:
        if self.agent_directory is not None:
            try:
                session = await self.agent_directory.session_on_phone(phone)
            except StoreUnavailable as exc:
                log.warn("agent lookup for phone {phone} failed: {exc}", phone=phone, exc=exc)
                session = None
            if session is not None:
                return session.number
        return f"phone:{phone}"

    async def _call_record(self, call_id: str) -> dict:
        if self.call_records is None or not _CALL_ID_RE.fullmatch(call_id):
            return {}
        try:
            return await self.call_records.get(call_id) or {}
        except StoreUnavailable as exc:
            log.warn("call record {id} unreadable: {exc}", id=call_id, exc=exc)
            return {}

    async def _ticket_for(self, record: dict, call_id: str, agent: str) -> str:
        number = record.get("caller", "")
        number = number if _NUMBER_RE.fullmatch(number) else ""
        ticket_id = await self.repeat.active_ticket(number) if number else None
        if ticket_id is None:
            ticket = await self.complaints.open(
                number=number, customer=record.get("customer", "")[:80],
                queue=record.get("queue", ""), category=record.get("category", ""),
                call_id=call_id if _CALL_ID_RE.fullmatch(call_id) else "",
                language=record.get("language", ""), agent=agent)
            ticket_id = ticket.id
        try:
            await self.complaints.escalate(ticket_id, "warm", to_level="supervisor", by=agent)
        except TicketError:
            # Already at supervisor or manager level (a repeat complainant): keep the level.
            await self.complaints.note(ticket_id, "warm_transfer_requested", by=agent)
        return ticket_id

    # --- the transfer ---------------------------------------------------------------------
    def _start_transfer(self, caller_channel: str) -> Deferred:
        d = Deferred.fromCoroutine(self.start_transfer(caller_channel))
        d.addErrback(lambda f: log.error("Atxfer for {ch} failed: {f}", ch=caller_channel,
                                         f=f.getTraceback()))
        self.last_transfer = d
        return d

    async def start_transfer(self, caller_channel: str) -> bool:
        entry = await self.transfers.peek(caller_channel)
        if entry is None:
            return False        # the caller hung up before the transfer started
        if self.ami is None:
            return await self._failed(caller_channel, "AMI disabled")
        try:
            await self.ami.send_action("Atxfer", Channel=entry["agent_channel"],
                                       Exten=self.settings.supervisor_exten,
                                       Context=self.settings.supervisor_context)
        except AmiError as exc:
            # e.g. "No attended transfer feature code found" without `atxfer => *2` in
            # features.conf (ami8c0_atxfer_default_featuremap).
            return await self._failed(caller_channel, str(exc))
        return True

    async def _failed(self, caller_channel: str, why: str) -> bool:
        entry = await self.transfers.take(caller_channel)
        self.pending.discard(caller_channel)
        if entry is not None:
            self.complaints.metrics.transfers.labels("failed").inc()
            log.error("warm escalation of ticket {id} not started: {why}", id=entry["ticket"],
                      why=why)
            await self.complaints.note(entry["ticket"], "transfer_failed", error=why[:120])
        return False

    # --- AMI events -----------------------------------------------------------------------
    async def resync(self) -> None:
        """After a (re)start or AMI login: which transfers are still in progress."""
        self.pending = set(await self.transfers.channels())

    async def on_attended_transfer(self, event: Message) -> None:
        caller_channel = event.get("TransfereeChannel") or ""
        if caller_channel not in self.pending:
            return
        entry = await self.transfers.take(caller_channel)
        self.pending.discard(caller_channel)
        if entry is None:
            return
        if event.get("Result") == "Success":
            supervisor = event.get("TransferTargetCallerIDNum") or ""
            self.complaints.metrics.transfers.labels("connected").inc()
            await self._note(entry, "supervisor_connected",
                             supervisor=supervisor if _DIGITS_RE.fullmatch(supervisor) else "")
        else:
            self.complaints.metrics.transfers.labels("no_supervisor").inc()
            await self._note(entry, "supervisor_unavailable",
                             result=(event.get("Result") or "")[:20])

    async def on_hangup(self, event: Message) -> None:
        caller_channel = event.get("Channel") or ""
        if caller_channel not in self.pending:
            return
        entry = await self.transfers.take(caller_channel)
        self.pending.discard(caller_channel)
        if entry is not None:
            self.complaints.metrics.transfers.labels("caller_hangup").inc()
            await self._note(entry, "caller_hangup_during_briefing")

    async def _note(self, entry: dict, event: str, **extra: str) -> None:
        try:
            await self.complaints.note(entry["ticket"], event, by=entry.get("agent", ""), **extra)
        except TicketNotFound:
            log.error("ticket {id} of a warm escalation no longer exists", id=entry["ticket"])
