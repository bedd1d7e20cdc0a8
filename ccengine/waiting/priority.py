"""Queue priorities that keep a caller's place when Queue() is entered again.

Asterisk fact (apps/app_queue.c, `join_queue()`): a joining caller is inserted before the
first caller with a *lower* priority, i.e. after every caller with a higher or equal one; the
ami6_queue_priority_withdraw capture shows it (B with QUEUE_PRIO=10 joined at Position 1 ahead
of A with priority 0). A caller who leaves Queue() on its timeout to hear the announcement and
comes back would therefore land behind everyone of its priority who joined after it.

The engine gives every entry into the queue the priority

    QUEUE_PRIO = base * SCALE + (SCALE - 1 - seq mod SCALE)

where `base` is the business priority (VIP, repeat complaint ...) and `seq` is the caller's
first-join number in this queue (a Redis counter, INCR at the first announcement). The same
caller always re-enters with the same value, and a caller who joined earlier always has a
higher value than a later one of the same base, so Asterisk's order equals "base, then first
join" whatever the order of re-entries. A callback keeps the `seq` and priority of the call it
replaces, so the dialler can put the customer back at that place.

Bounds: QUEUE_PRIO is read with sscanf("%d") into a C int, so the value must stay under
2**31: base is clamped to MAX_BASE. The sequence wraps after SCALE (10 million) first joins
of one queue; callers straddling that moment may swap places once (docs/waiting.md).
"""
from __future__ import annotations

SCALE = 10_000_000
MAX_BASE = (2**31 - 1) // SCALE - 1   # 213: base * SCALE + SCALE - 1 < 2**31


def clamp_base(base: int) -> int:
    return min(max(base, 0), MAX_BASE)


def queue_priority(base: int, seq: int) -> int:
    """QUEUE_PRIO for a caller with business priority `base` and first-join number `seq`."""
    if seq < 1:
        raise ValueError("seq starts at 1")
    return clamp_base(base) * SCALE + (SCALE - 1 - seq % SCALE)


def base_of(value: str | None) -> int:
    """The business priority from CC_PRIORITY, which holds either the hotline's base (small) or
    a value this module computed (scaled); garbage counts as 0."""
    try:
        number = int((value or "0").strip())
    except ValueError:
        return 0
    if number < 0:
        return 0
    return clamp_base(number // SCALE if number >= SCALE else number)
