"""Calling windows, pure: may this customer be called now, and if not, from when?

A window is local wall-clock time in the *customer's* time zone (09:00-17:00 by default), on
open week days, never on closed dates. Everything is computed from epoch seconds with
zoneinfo, so a daylight-saving change moves the opening in UTC but never in local time:

- "open now" compares the customer's local time with the window (no offset arithmetic);
- "next opening" builds each candidate day's local start with zoneinfo and keeps it only if
  that instant really is inside the window. A start that falls into a DST gap (a local time
  that does not exist) resolves with fold=0 to the instant *after* the gap's wall time, which
  is later than the nominal start: the engine may call a little late, never early.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_DAYS = 400      # a window with no open day in this long never opens


class BadTimeZone(ValueError):
    """A time zone name zoneinfo does not know."""


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadTimeZone(f"unknown time zone {name[:60]!r}") from exc


def valid_zone(name: str) -> bool:
    try:
        zone(name)
    except BadTimeZone:
        return False
    return True


@dataclass(frozen=True)
class CallingWindow:
    start: time
    end: time
    days: frozenset[int]           # 0 = Monday (datetime.weekday())
    closed: frozenset[date] = frozenset()

    @classmethod
    def from_config(cls, config) -> CallingWindow:
        """From OutboundConfig (window_start, window_end, days, closed_dates)."""
        return cls(time.fromisoformat(config.window_start), time.fromisoformat(config.window_end),
                   frozenset(DAY_NAMES.index(d) for d in config.days),
                   frozenset(date.fromisoformat(d) for d in config.closed_dates))

    def open_on(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.closed

    def is_open(self, instant: float, tz: str) -> bool:
        """True when `instant` (epoch seconds) is inside the window in time zone `tz`."""
        local = datetime.fromtimestamp(instant, zone(tz))
        return self.open_on(local.date()) and self.start <= local.time() < self.end

    def next_opening(self, instant: float, tz: str) -> float | None:
        """`instant` itself when open, else the epoch time of the next opening in `tz`;
        None when the window never opens (no open day, or start >= end)."""
        if self.is_open(instant, tz):
            return instant
        if self.start >= self.end or not self.days:
            return None
        tzinfo = zone(tz)
        today = datetime.fromtimestamp(instant, tzinfo).date()
        for offset in range(SEARCH_DAYS):
            day = today + timedelta(days=offset)
            if not self.open_on(day):
                continue
            opening = datetime.combine(day, self.start, tzinfo).timestamp()
            if opening >= instant and self.is_open(opening, tz):
                return opening
        return None

    def closes_at(self, instant: float, tz: str) -> float | None:
        """End of the window that contains `instant` (epoch), None when closed at `instant`."""
        if not self.is_open(instant, tz):
            return None
        local = datetime.fromtimestamp(instant, zone(tz))
        return datetime.combine(local.date(), self.end, zone(tz)).timestamp()
