"""Complaint tickets: the value object and its transitions, pure (no Redis, no clock).

A ticket moves through states `open -> escalated -> resolved -> closed` and levels
`agent -> supervisor -> manager`. Each level has a deadline (`ComplaintsConfig.deadline_hours`);
the sweeper escalates a ticket whose deadline passed to the next level, once per level. At the
manager level there is nowhere left to go: the ticket stays there, marked `chain_end`, and is
no longer swept (it still counts as overdue until someone resolves it).

Every transition is a function `(ticket, now, ...) -> (new ticket, history entry)` that raises
`TicketError` when the change is not allowed, so the store can run it inside WATCH/MULTI and
the API can refuse bad requests without writing anything.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

STATES = ("open", "escalated", "resolved", "closed")
ACTIVE = ("open", "escalated")
LEVELS = ("agent", "supervisor", "manager")
REASONS = ("overdue", "warm", "waiting", "followup")   # why a ticket went up a level
TICKET_ID_RE = re.compile(r"^[0-9]{1,12}$")
OWNER_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,40}$")
MAX_TEXT = 500


class TicketError(ValueError):
    """A transition that is not allowed (or bad input for it); nothing was written."""


class TicketNotFound(LookupError):
    """No ticket with that id."""


def check_ticket_id(value: Any) -> str:
    text = str(value)
    if not TICKET_ID_RE.fullmatch(text):
        raise TicketError("a ticket id is 1 to 12 digits")
    return text


def check_owner(value: Any) -> str:
    if not isinstance(value, str) or not OWNER_RE.fullmatch(value):
        raise TicketError("owner: 1-40 letters, digits, _ . @ -")
    return value


def check_text(name: str, value: Any, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise TicketError(f"{name}: a non-empty text is required")
    if len(value) > MAX_TEXT or any(ord(c) < 32 and c not in "\t" for c in value):
        raise TicketError(f"{name}: at most {MAX_TEXT} characters, no control characters")
    return value.strip()


@dataclass(frozen=True)
class ComplaintTicket:
    id: str
    number: str = ""            # caller number ('' when withheld)
    customer: str = ""          # display name of a known customer
    queue: str = ""
    category: str = ""
    call_id: str = ""
    language: str = ""
    agent: str = ""             # agent who opened it (agent number, or phone:<endpoint>)
    owner: str = ""             # who must act now ('' = the level's pool)
    state: str = "open"
    level: str = "agent"
    opened: float = 0.0
    deadline: float = 0.0       # deadline of the current level
    updated: float = 0.0
    resolved_at: float = 0.0
    closed_at: float = 0.0
    outcome: str = ""
    missed: int = 0             # deadlines missed (sweeper escalations)
    chain_end: bool = False     # overdue at the last level
    followup: str = ""          # '', scheduled, satisfied, unsatisfied
    history: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def to_hash(self) -> dict[str, str]:
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "history":
                continue
            value = getattr(self, f.name)
            out[f.name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out

    @classmethod
    def from_hash(cls, data: Mapping[str, str], history=()) -> ComplaintTicket:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "history" or f.name not in data:
                continue
            raw = data[f.name]
            if f.type in ("float", float):
                kwargs[f.name] = float(raw or 0)
            elif f.type in ("int", int):
                kwargs[f.name] = int(raw or 0)
            elif f.type in ("bool", bool):
                kwargs[f.name] = raw == "1"
            else:
                kwargs[f.name] = raw
        return cls(history=tuple(history), **kwargs)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["history"] = [dict(h) for h in self.history]
        return out


def entry(ticket: ComplaintTicket, new: ComplaintTicket, now: float, event: str,
          by: str = "", **extra: Any) -> dict[str, Any]:
    """One history entry: what changed, when, by whom."""
    out: dict[str, Any] = {"at": round(now, 3), "event": event}
    if by:
        out["by"] = by
    if ticket.state != new.state:
        out["state"] = [ticket.state, new.state]
    if ticket.level != new.level:
        out["level"] = [ticket.level, new.level]
    if ticket.owner != new.owner:
        out["owner"] = [ticket.owner, new.owner]
    out.update({k: v for k, v in extra.items() if v not in (None, "")})
    return out


def deadline_for(level: str, now: float, deadline_hours: Mapping[str, int]) -> float:
    return now + float(deadline_hours[level]) * 3600.0


def next_level(level: str) -> str | None:
    index = LEVELS.index(level)
    return LEVELS[index + 1] if index + 1 < len(LEVELS) else None


Change = tuple[ComplaintTicket, dict[str, Any]]


def open_ticket(ticket_id: str, now: float, deadline_hours: Mapping[str, int],
                **fields: Any) -> Change:
    ticket = ComplaintTicket(id=ticket_id, opened=now, updated=now,
                             deadline=deadline_for("agent", now, deadline_hours), **fields)
    return ticket, entry(ComplaintTicket(id=ticket_id, state=""), ticket, now, "opened",
                         by=fields.get("agent", ""))


def escalate(ticket: ComplaintTicket, now: float, deadline_hours: Mapping[str, int], *,
             reason: str, to_level: str | None = None, expected_level: str | None = None,
             by: str = "", note: str = "") -> Change:
    """Up one level (or to `to_level` if that is higher). `expected_level` makes the sweeper's
    escalation exactly-once: a ticket already moved on by someone else is refused."""
    if reason not in REASONS:
        raise TicketError(f"unknown escalation reason {reason!r}")
    if not ticket.active:
        raise TicketError(f"ticket {ticket.id} is {ticket.state}")
    if expected_level is not None and ticket.level != expected_level:
        raise TicketError(f"ticket {ticket.id} is no longer at level {expected_level}")
    if reason == "overdue" and ticket.deadline > now:
        raise TicketError(f"ticket {ticket.id} is not overdue")
    target = to_level or next_level(ticket.level)
    if target is None or LEVELS.index(target) <= LEVELS.index(ticket.level):
        if reason != "overdue":
            raise TicketError(f"ticket {ticket.id} is already at level {ticket.level}")
        if ticket.chain_end:
            raise TicketError(f"ticket {ticket.id} already reached the end of the chain")
        new = dataclasses.replace(ticket, chain_end=True, missed=ticket.missed + 1, updated=now)
        return new, entry(ticket, new, now, "chain_end", by=by, reason=reason)
    new = dataclasses.replace(
        ticket, state="escalated", level=target, owner="", updated=now,
        deadline=deadline_for(target, now, deadline_hours),
        missed=ticket.missed + (1 if reason == "overdue" else 0))
    return new, entry(ticket, new, now, "escalated", by=by, reason=reason, note=note)


def assign(ticket: ComplaintTicket, now: float, owner: str, by: str = "") -> Change:
    owner = check_owner(owner)
    if ticket.state == "closed":
        raise TicketError(f"ticket {ticket.id} is closed")
    if owner == ticket.owner:
        raise TicketError(f"ticket {ticket.id} is already assigned to {owner}")
    new = dataclasses.replace(ticket, owner=owner, updated=now)
    return new, entry(ticket, new, now, "assigned", by=by)


def resolve(ticket: ComplaintTicket, now: float, outcome: str, by: str = "") -> Change:
    outcome = check_text("outcome", outcome)
    if not ticket.active:
        raise TicketError(f"ticket {ticket.id} is {ticket.state}, only open or escalated "
                          "tickets can be resolved")
    new = dataclasses.replace(ticket, state="resolved", outcome=outcome, resolved_at=now,
                              updated=now)
    return new, entry(ticket, new, now, "resolved", by=by, outcome=outcome)


def close(ticket: ComplaintTicket, now: float, by: str = "", note: str = "") -> Change:
    note = check_text("note", note, required=False)
    if ticket.state == "closed":
        raise TicketError(f"ticket {ticket.id} is already closed")
    new = dataclasses.replace(ticket, state="closed", closed_at=now, updated=now)
    return new, entry(ticket, new, now, "closed", by=by, note=note,
                      within_limit=within_limit(new))


def within_limit(ticket: ComplaintTicket) -> bool:
    """Closed within its time limit: no deadline was missed and it was resolved (or closed,
    if never resolved) before the deadline of the level it was at."""
    done = ticket.resolved_at or ticket.closed_at
    return ticket.missed == 0 and bool(done) and done <= ticket.deadline


def followup_result(ticket: ComplaintTicket, now: float, satisfied: bool,
                    deadline_hours: Mapping[str, int]) -> Change:
    """A satisfied customer closes the ticket; an unsatisfied one reopens it at supervisor
    level with a fresh supervisor deadline."""
    if ticket.state not in ("resolved", "closed"):
        raise TicketError(f"ticket {ticket.id} is {ticket.state}: no follow-up expected")
    if satisfied:
        new = dataclasses.replace(ticket, followup="satisfied", updated=now,
                                  state="closed", closed_at=ticket.closed_at or now)
        return new, entry(ticket, new, now, "followup", result="satisfied")
    new = dataclasses.replace(
        ticket, followup="unsatisfied", state="escalated", level="supervisor", owner="",
        updated=now, resolved_at=0.0, closed_at=0.0, chain_end=False,
        deadline=deadline_for("supervisor", now, deadline_hours))
    return new, entry(ticket, new, now, "followup", result="unsatisfied", reason="followup")


def followup_scheduled(ticket: ComplaintTicket, now: float, job_id: str) -> Change:
    new = dataclasses.replace(ticket, followup="scheduled", updated=now)
    return new, entry(ticket, new, now, "followup_scheduled", job=job_id)


def note(ticket: ComplaintTicket, now: float, event: str, **extra: Any) -> Change:
    """A history entry without a state change (transfer outcomes, notifications)."""
    new = dataclasses.replace(ticket, updated=now)
    return new, entry(ticket, new, now, event, **extra)
