"""Small value checks and patterns shared by the configuration sections."""
from __future__ import annotations

import re
from typing import Any

LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")
QUEUE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
CATEGORY_RE = re.compile(r"^[12349][0-9]$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = ("inquiry", "lookup", "complaint", "suggestion", "other")


def port(port: int) -> list[str]:
    return [] if 0 < port < 65536 else [f"port: {port} is not a TCP port"]


def positive(obj: Any, *names: str) -> list[str]:
    return [f"{n}: must be greater than 0" for n in names if getattr(obj, n) <= 0]
