"""The wait estimate a caller hears: position-aware, re-estimated at each announcement.

    estimate = position * average_handling_time / agents_staffing

`position` counts everything served before this caller: callers and pending callbacks with a
higher priority or an earlier first join. `agents_staffing` are members of the queue who are
logged in and not paused (talking or idle: each of them frees up once per handling time).
`average_handling_time` is the mean of the queue's most recent talk times.

What it deliberately does not use: the time the caller has already waited. Asterisk's own
estimate (app_queue `holdtime`) is a queue-wide moving average of hold times, and the announced
value grows again once a caller has waited longer than that average; here the time already
waited never enters the formula, so a longer wait can only come from a worse position, fewer
agents or longer calls. Without agents or without history there is no honest number: None.
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def average_handling_time(talk_times: Sequence[float]) -> float | None:
    """Mean of the recorded talk times (seconds); None without history. Values that are not
    positive are ignored (a call that never talked says nothing about handling time)."""
    usable = [t for t in talk_times if t > 0]
    if not usable:
        return None
    return sum(usable) / len(usable)


def estimate_wait(position: int, agents_staffing: int | None,
                  talk_times: Sequence[float]) -> float | None:
    """Expected seconds until this caller is answered, or None when it cannot be estimated."""
    if position < 1:
        raise ValueError("position starts at 1")
    if not agents_staffing or agents_staffing < 1:
        return None
    aht = average_handling_time(talk_times)
    if aht is None:
        return None
    return position * aht / agents_staffing


def spoken_minutes(seconds: float) -> int:
    """Whole minutes to announce: rounded up, at least 1 ("about 0 minutes" helps nobody)."""
    return max(1, math.ceil(seconds / 60))
