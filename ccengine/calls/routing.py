"""Routing decisions (pure): where a call goes, with which priority and category."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ccengine.config import CallersConfig, IvrConfig
from ccengine.config.checks import KIND_BY_DIGIT
from ccengine.calls.customers import CallerProfile
_NUMBER_RE = re.compile(r"^\+?[0-9]{3,32}$")


@dataclass(frozen=True)
class RouteDecision:
    queue: str
    priority: int
    category: str
    kind: str

    def variables(self) -> list[tuple[str, str]]:
        return [("CC_QUEUE", self.queue), ("CC_PRIORITY", str(self.priority)),
                ("CC_CATEGORY", self.category)]


def caller_number(raw: str) -> str:
    """The caller number if it is a plausible phone number, else '' (anonymous or hostile)."""
    candidate = raw.strip()
    return candidate if _NUMBER_RE.fullmatch(candidate) else ""


def display_name(raw: str, limit: int = 48) -> str:
    """A name safe to show an agent: control and format characters removed, trimmed."""
    kept = "".join(ch for ch in raw if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    return " ".join(kept.split())[:limit]


def priority_for(profile: CallerProfile, callers: CallersConfig) -> int:
    if profile.tier == "vip":
        return callers.vip_priority
    if profile.tier == "known":
        return callers.known_priority
    return 0


def from_menu(digit: str | None, ivr: IvrConfig, profile: CallerProfile,
              callers: CallersConfig) -> RouteDecision:
    """The decision for a menu key; None or an unknown key gives the default route."""
    option = ivr.options.get(digit) if digit else None
    if option is None:
        queue, category = ivr.default_queue, ivr.default_category
    else:
        queue, category = option.queue, option.category
    return RouteDecision(queue=queue, priority=priority_for(profile, callers),
                         category=category, kind=KIND_BY_DIGIT[category[0]])


def default_route(ivr: IvrConfig) -> RouteDecision:
    """What the watchdog and Redis-less calls use: the default queue, no priority."""
    return RouteDecision(queue=ivr.default_queue, priority=0, category=ivr.default_category,
                         kind=KIND_BY_DIGIT[ivr.default_category[0]])


_CALL_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def safe_call_id(uniqueid: str) -> str:
    """The channel's uniqueid as record id; anything odd is replaced by a digest of it."""
    if _CALL_ID_RE.fullmatch(uniqueid):
        return uniqueid
    import hashlib
    return "x-" + hashlib.sha256(uniqueid.encode("utf-8", "replace")).hexdigest()[:24]
