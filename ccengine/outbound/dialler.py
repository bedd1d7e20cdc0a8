"""The dialler: one AMI Originate per attempt, its outcome, retries, and the reconnect check.

Originate shape (customer first, then a queue; dialplans/extensions_ccengine.conf):
    Channel: Local/<digits>@ccengine-outbound/n   (OutboundConfig.dial_template)
    Context: ccengine-outbound-connect  Exten: <queue of the reserved agent>  Priority: 1
    (surveys: Context: ccengine-survey  Exten: s)
    Async: true   ChannelId: <uuid4 we generate>   Variable: CCENGINE_JOB=<job id> ...
The ;2 half of the Local channel runs [ccengine-outbound] and Dial()s the customer; the ;1
half is answered only when the customer answers, so OriginateResponse speaks about the
customer. Async Originate answers `Originate successfully queued` at once and later sends the
OriginateResponse event with the same ActionID and `Uniqueid` = our ChannelId (capture
ami5_originate #1, transcripts2 AMI note 4). Correlation uses the ChannelId, which survives
a reconnect; the ActionID does not (it is per connection).

Reason (enum ast_control_frame_type, include/asterisk/frame.h; captured values in ami5):
    4 ANSWER -> answered (#1) · 3 RINGING -> no answer (#5 no SIP reply, #6 rang out) ·
    5 BUSY -> busy · 8 CONGESTION -> failed · 1 HANGUP (ended before answer) -> no answer ·
    0 (no channel / no such extension, #2 and #4) -> failed.
The dialplan turns the customer's DIALSTATUS BUSY / CONGESTION into Busy() / Congestion()
so that they reach the ;1 half as those control frames.

Exactly one call per attempt: BEGIN (jobs.py) marks the job dialling with the ChannelId
before the Originate is written. If the AMI connection drops after that, the action is never
re-sent: after the next login `check_inflight` lists the channels (CoreShowChannels) and
looks for the ChannelId (or `<ChannelId>;2`): up -> answered; still there -> wait for its
OriginateResponse (events of a reconnected session are delivered again); gone -> outcome
`unknown`, a normal retry after the back-off. Never an immediate second Originate.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from twisted.logger import Logger

from ccengine.ami.client import AmiNotConnected
from ccengine.ami.protocol import AmiActionError, AmiConnectionLost, AmiTimeout
from ccengine.config import OutboundConfig
from ccengine.outbound.jobs import Job, JobStore
from ccengine.outbound.pacing import Reservation

log = Logger()

CHANNEL_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# Same bounds as [ccengine-outbound] (3-20 digits); the business rules (prefixes, lengths)
# were applied before, by waiting.numbers.check_callback_number.
DIAL_NUMBER_RE = re.compile(r"^[0-9]{3,20}$")
REASON_OUTCOME = {"4": "answered", "3": "no_answer", "5": "busy", "8": "failed",
                  "1": "no_answer", "0": "failed"}
FINAL_OUTCOMES = {"answered": "done", "invalid_number": "failed", "do_not_call": "cancelled"}
VERIFY_GRACE = 30.0           # seconds after the Originate timeout before a silent call is checked
ANSWERED_HOLD_SECONDS = 20    # the agent stays reserved this long after the customer answered


def new_channel_id() -> str:
    channel_id = str(uuid.uuid4())
    assert CHANNEL_ID_RE.fullmatch(channel_id)
    return channel_id


def ticket_of(job: Job) -> str:
    """The complaint ticket id of a follow-up job (origin `ticket:<digits>`)."""
    kind, _, value = job.origin.partition(":")
    if kind != "ticket" or not value.isdigit() or len(value) > 12:
        raise ValueError("follow-up job without a ticket id")
    return value


def outcome_of(reason: str | None) -> str:
    """Outcome of an OriginateResponse `Reason` (unknown codes count as failed)."""
    return REASON_OUTCOME.get((reason or "").strip(), "failed")


def next_step(outcome: str, attempts: int, now: float, config: OutboundConfig) -> tuple[str, float]:
    """(final state or '' to retry, next due). Retry n waits retry_minutes[n-1] (the last
    value repeats) until max_attempts attempts were made."""
    if outcome in FINAL_OUTCOMES:
        return FINAL_OUTCOMES[outcome], 0.0
    if attempts >= config.max_attempts:
        return "failed", 0.0
    waits = config.retry_minutes or (10,)
    return "", now + 60 * waits[min(attempts, len(waits)) - 1]


@dataclass
class _Call:
    job: Job
    reservation: Reservation | None
    attempt: int
    started: float


class Dialler:
    def __init__(self, ami: Any, jobs: JobStore, config: OutboundConfig, clock: Any, metrics: Any,
                 pool: Any = None, on_final: Callable[[Job, str, float], Any] | None = None,
                 on_answered: Callable[[Job, str], Any] | None = None):
        self.ami = ami
        self.jobs = jobs
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.pool = pool
        self.on_final = on_final          # async (job, final state, now) -> origin bookkeeping
        self.on_answered = on_answered    # async (job, channel id) -> call record
        self.calls: dict[str, _Call] = {}
        # Whether this engine runs the dialler now (ami.shared: the holder of the jobs lease;
        # every engine receives the OriginateResponse events, one concludes them).
        self.active: Callable[[], bool] = lambda: True

    def attach(self) -> None:
        self.ami.subscribe("OriginateResponse", self.on_originate_response)

    @property
    def in_flight(self) -> int:
        return len(self.calls)

    def originate_fields(self, job: Job, channel_id: str, queue: str) -> list[tuple[str, str]]:
        """The Originate action for one attempt (number and queue are validated upstream:
        digits only, a configured queue name)."""
        if not CHANNEL_ID_RE.fullmatch(channel_id) or not DIAL_NUMBER_RE.fullmatch(job.number):
            raise ValueError("refusing to originate with an unchecked ChannelId or number")
        variables = [f"CCENGINE_JOB={job.id}", f"CCENGINE_QUEUE={queue}"]
        if job.kind == "survey":
            context, exten = "ccengine-survey", "s"
        elif job.kind == "followup":
            # complaints/followup.py: the answered call goes to AGI `followup` <ticket id>.
            context, exten = "ccengine-survey", "followup"
            variables.append(f"CCENGINE_TICKET={ticket_of(job)}")
        else:
            context, exten = "ccengine-outbound-connect", queue
        return [("Channel", self.config.dial_template.format(number=job.number)),
                ("Context", context), ("Exten", exten), ("Priority", "1"),
                ("Timeout", str(self.config.originate_timeout * 1000)),
                *(("Variable", v) for v in variables),
                ("Async", "true"), ("ChannelId", channel_id)]

    async def dial(self, job: Job, reservation: Reservation | None,
                   queue: str) -> tuple[str, float]:
        """BEGIN then Originate; returns (status, retry at): ok, not_sent, unsure, or BEGIN's
        refusal (stale, do_not_call, rate, interval: the caller handles those)."""
        now = self.clock.seconds()
        channel_id = new_channel_id()
        lease_end = now + self.config.originate_timeout + VERIFY_GRACE
        begun = await self.jobs.begin(job, channel_id, now, lease_end,
                                      self.config.max_calls_per_minute,
                                      self.config.per_number_interval_minutes * 60)
        if begun.status != "ok":
            return begun.status, begun.retry_at
        self.calls[channel_id] = _Call(job, reservation, begun.attempt, now)
        try:
            await self.ami.send_action("Originate", self.originate_fields(job, channel_id, queue))
        except AmiNotConnected:
            # Nothing was written: the attempt never happened.
            self.calls.pop(channel_id, None)
            await self.jobs.abort(job, channel_id, now + self.config.poll_interval)
            await self._release(reservation)
            return "not_sent", 0.0
        except AmiActionError as exc:
            # `Response: Error` (ami5 #3, `Originate failed`): Asterisk refused it; no call.
            log.warn("Originate for job {job} refused: {exc}", job=job.id, exc=exc)
            await self.conclude(channel_id, "failed")
            return "ok", 0.0
        except (AmiConnectionLost, AmiTimeout) as exc:   # it may have been sent
            log.warn("Originate for job {job} unconfirmed ({exc}); checking the channel after "
                     "the reconnect", job=job.id, exc=type(exc).__name__)
            return "unsure", 0.0
        return "ok", 0.0

    async def on_originate_response(self, msg: Any) -> None:
        if not self.active():
            return
        channel_id = (msg.get("Uniqueid") or "").strip()
        if not CHANNEL_ID_RE.fullmatch(channel_id):
            return            # not one of ours (another AMI client's Originate)
        await self.conclude(channel_id, outcome_of(msg.get("Reason")))

    async def conclude(self, channel_id: str, outcome: str) -> bool:
        """Record the attempt's outcome once; retry later or finish the job."""
        call = self.calls.get(channel_id)
        if call is None:
            job_id = (await self.jobs.inflight()).get(channel_id)
            if job_id is None:
                return False
            job = await self.jobs.get(job_id)
            if job is None:
                return False
            call = _Call(job, None, job.attempts, self.clock.seconds())
        now = self.clock.seconds()
        final, next_due = next_step(outcome, call.attempt, now, self.config)
        record = {"attempt": call.attempt, "channel_id": channel_id, "outcome": outcome,
                  "at": round(now, 3), "started": round(call.started, 3),
                  "agent": call.reservation.agent if call.reservation else ""}
        done = await self.jobs.finish_attempt(call.job, channel_id, outcome, now, final,
                                              next_due, record)
        self.calls.pop(channel_id, None)
        if not done:
            return False
        self.metrics.attempt(call.job.kind, outcome)
        if outcome == "answered":
            if call.reservation is not None:
                await self.pool.keep(call.reservation, ANSWERED_HOLD_SECONDS)
            if self.on_answered is not None:
                await self.on_answered(call.job, channel_id)
        else:
            await self._release(call.reservation)
        if final and self.on_final is not None:
            await self.on_final(call.job, final, now)
        return True

    async def _release(self, reservation: Reservation | None) -> None:
        if reservation is not None and self.pool is not None:
            await self.pool.release(reservation)

    # --- after a reconnect, or when a dial's lease ended without an answer -----------------
    async def check_inflight(self, only: set[str] | None = None) -> dict[str, str]:
        """Ask Asterisk about every dial whose outcome is unknown; returns {ChannelId: verdict}
        with verdict answered / waiting / gone. Sends no Originate."""
        inflight = await self.jobs.inflight()
        if only is not None:
            inflight = {c: j for c, j in inflight.items() if j in only}
        if not inflight:
            return {}
        listing = await self.ami.send_list_action("CoreShowChannels")
        live: dict[str, str] = {}
        for item in listing:
            if (item.event or "").lower() == "coreshowchannel":
                live[(item.get("Uniqueid") or "").strip()] = (item.get("ChannelState") or "").strip()
        verdicts = {}
        for channel_id in inflight:
            state = live.get(channel_id)
            if state == "6":           # the ;1 half is Up: the customer answered
                verdicts[channel_id] = "answered"
                await self.conclude(channel_id, "answered")
            elif state is not None or f"{channel_id};2" in live:
                verdicts[channel_id] = "waiting"
            else:
                verdicts[channel_id] = "gone"
                await self.conclude(channel_id, "unknown")
        return verdicts
