"""Configuration sections of the features built on the core: waiting callers, agents,
complaints, outbound. Parsed by config.py like every other section."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from collections.abc import Mapping

from ccengine.config.checks import QUEUE_NAME_RE, calendar, positive as _positive


@dataclass(frozen=True)
class WaitingConfig:
    """Waiting callers and callbacks (ccengine/waiting/)."""
    offer_callback: bool = True
    min_number_digits: int = 5
    max_number_digits: int = 15
    allow_international: bool = False
    international_prefixes: tuple[str, ...] = ("00", "+")
    denied_prefixes: tuple[str, ...] = ("900", "1900", "0900")
    allowed_prefixes: tuple[str, ...] = ()
    callback_expire_hours: int = 48
    handling_time_default: float = 180.0
    handling_time_window: int = 50
    offer_timeout: float = 5.0            # seconds to wait for 1/2 after an announcement
    claim_timeout_seconds: int = 300      # a dialler's claim older than this is re-delivered
    sweep_interval: float = 30.0          # expiry, re-delivery, line sweep and pending gauge
    finished_keep_days: int = 30          # finished callbacks stay readable this long
    # Seconds after 00:00 UTC where the daily order of waiting callers wraps; equal to the
    # dialplan global CCENGINE_PLACE_ROLLOVER (waiting/priority.py).
    place_rollover: int = 72000

    def problems(self) -> list[str]:
        out = _positive(self, "min_number_digits", "max_number_digits", "callback_expire_hours",
                        "handling_time_default", "handling_time_window", "offer_timeout",
                        "claim_timeout_seconds", "sweep_interval", "finished_keep_days")
        if not 0 <= self.place_rollover < 86400:
            out.append("place_rollover: seconds after 00:00 UTC, 0 to 86399")
        if self.max_number_digits > 32:
            out.append("max_number_digits: at most 32")
        if self.min_number_digits > self.max_number_digits:
            out.append("min_number_digits: greater than max_number_digits")
        return out


@dataclass(frozen=True)
class AgentsConfig:
    """Agents on SIP phones (ccengine/agents/)."""
    interface_template: str = "PJSIP/{phone}"
    pause_reasons: Mapping[str, str] = field(default_factory=lambda: {
        "1": "break", "2": "meal", "3": "training", "4": "meeting", "5": "after-call work"})
    max_pin_failures: int = 3
    lockout_seconds: int = 300
    max_pin_attempts_per_phone: int = 10      # PIN attempts one phone may make per lockout_seconds
    no_answer_limit: int = 3
    no_answer_reason: str = "no answer"
    wrapup_seconds: int = 10
    announce_agent_number: bool = True
    whisper_wait: bool = True
    announce_queues: tuple[str, ...] = ()    # queues whose callers hear the agent number; () = all
    digit_timeout: float = 5.0               # seconds per digit of the agent number / PIN

    def problems(self) -> list[str]:
        out = _positive(self, "max_pin_failures", "lockout_seconds", "max_pin_attempts_per_phone",
                        "no_answer_limit",
                        "digit_timeout")
        if "{phone}" not in self.interface_template:
            out.append("interface_template: must contain {phone}")
        elif not re.fullmatch(r"[A-Za-z0-9]+/[A-Za-z0-9_@./-]*\{phone\}[A-Za-z0-9_@./-]*",
                              self.interface_template):
            out.append("interface_template: like PJSIP/{phone} (letters, digits, / @ . _ -)")
        for code, reason in self.pause_reasons.items():
            if not re.fullmatch(r"[0-9]{1,2}", code):
                out.append(f"pause_reasons.{code}: a reason code is 1 or 2 digits")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,39}", reason):
                out.append(f"pause_reasons.{code}: letters, digits, space, _ and - (max 40)")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,39}", self.no_answer_reason):
            out.append("no_answer_reason: letters, digits, space, _ and - (max 40)")
        return out


@dataclass(frozen=True)
class ComplaintsConfig:
    """Complaint tickets and escalation (ccengine/complaints/)."""
    supervisor_queue: str = "supervisor"
    deadline_hours: Mapping[str, int] = field(default_factory=lambda: {
        "agent": 24, "supervisor": 48, "manager": 72})
    sweep_interval: float = 60.0
    wait_limit_seconds: int = 120
    repeat_days: int = 30
    repeat_priority: int = 5
    complaint_queue: str = "complaint"          # where complainants wait (moved after wait_limit_seconds)
    wait_check_interval: float = 15.0           # seconds between two looks at the complaint queue
    supervisor_context: str = "ccengine-supervisor"   # Atxfer target (dialplans/extensions_ccengine.conf)
    supervisor_exten: str = "5000"
    atxfer_delay: float = 1.0                   # seconds after the escalate AGI ends before Atxfer
    followup_after_hours: float = 24.0          # follow-up call not before this long after resolving

    def problems(self) -> list[str]:
        out = _positive(self, "sweep_interval", "wait_limit_seconds", "repeat_days",
                        "wait_check_interval", "atxfer_delay")
        missing = {"agent", "supervisor", "manager"} - set(self.deadline_hours)
        out += [f"deadline_hours: level '{m}' missing" for m in sorted(missing)]
        out += [f"deadline_hours.{k}: must be greater than 0"
                for k, v in self.deadline_hours.items() if v <= 0]
        if not QUEUE_NAME_RE.fullmatch(self.complaint_queue):
            out.append("complaint_queue: lower-case letters, digits and _ only")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", self.supervisor_context):
            out.append("supervisor_context: letters, digits, _ and - only")
        if not re.fullmatch(r"[0-9A-Za-z*#]{1,20}", self.supervisor_exten):
            out.append("supervisor_exten: digits, letters, * and # only")
        if self.followup_after_hours < 0 or self.repeat_priority < 0:
            out.append("followup_after_hours and repeat_priority must not be negative")
        return out


@dataclass(frozen=True)
class OutboundConfig:
    """Outbound dialler (ccengine/outbound/)."""
    window_start: str = "09:00"
    window_end: str = "17:00"
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    closed_dates: tuple[str, ...] = ()
    max_attempts: int = 3
    retry_minutes: tuple[int, ...] = (10, 30, 120)
    max_calls_per_minute: int = 30
    per_number_interval_minutes: int = 60
    redelivery_seconds: int = 120
    originate_timeout: int = 30
    # Originate Channel: a Local channel into [ccengine-outbound], which Dial()s the trunk
    # (docs/outbound.md, "Originate shape"); the customer is called first, then queued.
    dial_template: str = "Local/{number}@ccengine-outbound/n"
    poll_interval: float = 2.0
    survey_queues: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        out = _positive(self, "max_attempts", "max_calls_per_minute", "redelivery_seconds",
                        "originate_timeout", "poll_interval")
        for key in ("window_start", "window_end"):
            try:
                time.fromisoformat(getattr(self, key))
            except ValueError:
                out.append(f"{key}: expected HH:MM")
        if not out and time.fromisoformat(self.window_start) >= time.fromisoformat(self.window_end):
            out.append("window_start: must be before window_end")
        out += calendar(self.days, self.closed_dates)
        if not self.retry_minutes or any(m <= 0 for m in self.retry_minutes):
            out.append("retry_minutes: one or more waits in minutes, each greater than 0")
        if self.per_number_interval_minutes < 0:
            out.append("per_number_interval_minutes: must not be negative")
        if self.dial_template.count("{number}") != 1 or not re.fullmatch(
                r"[A-Za-z0-9/@._-]*\{number\}[A-Za-z0-9/@._-]*", self.dial_template):
            out.append("dial_template: like Local/{number}@ccengine-outbound/n "
                       "(one {number}; letters, digits, / @ . _ -)")
        out += [f"survey_queues: '{q}' is not a queue name" for q in self.survey_queues
                if not QUEUE_NAME_RE.fullmatch(q)]
        return out
