"""Is this a number we may call back? Pure checks on the digits (lists are checked in Redis).

Order of the checks: format (digits only, length), then prefixes. An allow-listed prefix
(`allowed_prefixes`) overrides the international and premium denials, nothing else.
"""
from __future__ import annotations

import re

from ccengine.config import WaitingConfig

_DIGITS = re.compile(r"[0-9]+")

# Reasons, also used as the `reason` of a refused request (bounded set: usable in metrics).
NOT_DIGITS = "not_digits"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
INTERNATIONAL = "international"
PREMIUM = "premium"
BLOCKED = "blocked"
DO_NOT_CALL = "do_not_call"
REASONS = (NOT_DIGITS, TOO_SHORT, TOO_LONG, INTERNATIONAL, PREMIUM, BLOCKED, DO_NOT_CALL)


class NumberRejected(ValueError):
    """The number may not be called back; `reason` is one of REASONS."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_callback_number(number: str, config: WaitingConfig) -> str:
    """The number, unchanged, when it may be called back; raises NumberRejected otherwise.

    A caller ID in international format (`+86...`) is judged as international first, so it
    is refused with that reason (and accepted only if allowed) rather than as "not digits"."""
    if not isinstance(number, str) or not number:
        raise NumberRejected(NOT_DIGITS)
    allowed = any(number.startswith(p) for p in config.allowed_prefixes if p)
    international = any(number.startswith(p) for p in config.international_prefixes if p)
    if international and not (config.allow_international or allowed):
        raise NumberRejected(INTERNATIONAL)
    if not _DIGITS.fullmatch(number):
        raise NumberRejected(NOT_DIGITS)
    if len(number) < config.min_number_digits:
        raise NumberRejected(TOO_SHORT)
    if len(number) > config.max_number_digits:
        raise NumberRejected(TOO_LONG)
    if not allowed and any(number.startswith(p) for p in config.denied_prefixes if p):
        raise NumberRejected(PREMIUM)
    return number
