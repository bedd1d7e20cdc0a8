"""Queue priorities that keep a caller's place when Queue() is entered again.

Asterisk fact (apps/app_queue.c, `join_queue()`): a joining caller is inserted before the
first caller with a *lower* priority, i.e. after every caller with a higher or equal one; the
ami6_queue_priority_withdraw capture shows it (B with QUEUE_PRIO=10 joined at Position 1 ahead
of A with priority 0). A caller who leaves Queue() on its timeout to hear the announcement and
comes back would therefore land behind everyone of its priority who joined after it.

The dialplan ([ccengine-wait] and [ccengine-first-entry] in dialplans/extensions_ccengine.conf)
gives every entry into a queue the priority

    QUEUE_PRIO = base * SCALE + place
    place      = SCALE - 1 - ((hundredths of a second since the epoch - 100 * rollover) mod SCALE)

where `base` is the business priority (CC_PRIORITY: VIP, repeat complaint ...) and `place` is
fixed once, at the caller's first queue entry. The same caller always re-enters with the same
value, an earlier caller always has a larger one than a later caller of the same base, and a
higher base always wins, so Asterisk's order is "base, then first entry" whatever the order of
re-entries, with or without the engine. The engine receives the value the caller queued with
(AGI argument of queue-announce) and keeps it for a callback, so the dialler can put the
customer back at that place. This module has the same formula for callbacks that never waited
(requested outside opening hours).

Bounds: QUEUE_PRIO is read with sscanf("%d") into a C int, so the value must stay under 2**31:
base is clamped to MAX_BASE (247, the dialplan clamps the same). SCALE is one day in hundredths
of a second: the order wraps once a day at `rollover` seconds after 00:00 UTC (dialplan global
CCENGINE_PLACE_ROLLOVER, engine setting waiting.place_rollover); callers waiting across that
instant may lose their place once (docs/waiting.md).
"""
from __future__ import annotations

SCALE = 8_640_000                       # one day in hundredths of a second
MAX_BASE = (2**31 - 1) // SCALE - 1     # 247: base * SCALE + SCALE - 1 < 2**31
MAX_PRIORITY = (MAX_BASE + 1) * SCALE - 1
DEFAULT_ROLLOVER = 72_000               # 20:00 UTC = 04:00 in China


def clamp_base(base: int) -> int:
    return min(max(base, 0), MAX_BASE)


def place(epoch: float, rollover: int = DEFAULT_ROLLOVER) -> int:
    """The place part of a first entry at `epoch` (larger = earlier), as the dialplan computes it."""
    hundredths = int(round(epoch * 100, 6))
    return SCALE - 1 - (hundredths - rollover * 100) % SCALE


def queue_priority(base: int, epoch: float, rollover: int = DEFAULT_ROLLOVER) -> int:
    """QUEUE_PRIO for a caller with business priority `base` whose first entry was at `epoch`."""
    return clamp_base(base) * SCALE + place(epoch, rollover)


def parse(value: str | None) -> int | None:
    """A QUEUE_PRIO the dialplan passed (digits, 0..MAX_PRIORITY), else None."""
    text = (value or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    number = int(text)
    return number if number <= MAX_PRIORITY else None


def base_of(value: str | None) -> int:
    """The business priority from CC_PRIORITY or a full QUEUE_PRIO (scaled); garbage counts as 0."""
    try:
        number = int((value or "0").strip())
    except ValueError:
        return 0
    if number < 0:
        return 0
    return clamp_base(number // SCALE if number >= SCALE else number)
