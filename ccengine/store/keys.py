"""Every Redis key ccengine uses, in one place. Prefix `cc:`.

Numbers that reach a key are validated first (digits, '+' and at most 32 characters), so a
hostile caller ID cannot address another key or build an enormous one.
"""
from __future__ import annotations

import re

PREFIX = "cc:"
_NUMBER_RE = re.compile(r"^\+?[0-9]{1,32}$")
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BadKeyPart(ValueError):
    """A value that must not become part of a key."""


def number_part(number: str) -> str:
    if not _NUMBER_RE.match(number):
        raise BadKeyPart(f"not a phone number: {number[:40]!r}")
    return number


def id_part(value: str) -> str:
    if not _ID_RE.match(value):
        raise BadKeyPart(f"not an id: {value[:70]!r}")
    return value


# --- callers (core) --------------------------------------------------------------------------
def customer(number: str) -> str:
    """Hash: name, tier (vip|known), language."""
    return f"{PREFIX}customer:{number_part(number)}"


BLOCKLIST = f"{PREFIX}blocklist"          # set of numbers
VIP = f"{PREFIX}vip"                      # set of numbers


# --- call records (core) ---------------------------------------------------------------------
def call(call_id: str) -> str:
    """Hash: the call record (see calls/records.py)."""
    return f"{PREFIX}call:{id_part(call_id)}"


CALLS = f"{PREFIX}calls"                  # sorted set: call id by start time, trimmed
