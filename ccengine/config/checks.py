"""Small value checks and patterns shared by the configuration sections."""
from __future__ import annotations

import re
from datetime import date
from typing import Any

LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")
QUEUE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
CATEGORY_RE = re.compile(r"^[12349][0-9]$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = ("inquiry", "lookup", "complaint", "suggestion", "other")
# A category code's first digit is its kind (SERVICE-STANDARDS.md, "Kinds of call").
KIND_BY_DIGIT = {"1": "complaint", "2": "suggestion", "3": "inquiry", "4": "lookup", "9": "other"}


def port(port: int) -> list[str]:
    return [] if 0 < port < 65536 else [f"port: {port} is not a TCP port"]


def positive(obj: Any, *names: str) -> list[str]:
    return [f"{n}: must be greater than 0" for n in names if getattr(obj, n) <= 0]


def calendar(days: tuple[str, ...], closed_dates: tuple[str, ...]) -> list[str]:
    """Problems of a `days` / `closed_dates` pair (queue hours, the outbound calling window)."""
    out = [f"days: '{d}' is not one of {', '.join(DAYS)}" for d in days if d not in DAYS]
    for d in closed_dates:
        try:
            date.fromisoformat(d)
        except ValueError:
            out.append(f"closed_dates: '{d}' is not a date (YYYY-MM-DD)")
    return out
