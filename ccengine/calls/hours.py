"""Business hours and closed days of a queue, in the centre's time zone (pure)."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from ccengine.config import QueueConfig
from ccengine.config.checks import DAYS


def is_open(queue: QueueConfig, now: datetime) -> bool:
    """True when `now` (aware, any zone; compared in the zone it carries) is inside the hours."""
    if now.date().isoformat() in queue.closed_dates:
        return False
    if DAYS[now.weekday()] not in queue.days:
        return False
    opens, closes = time.fromisoformat(queue.open), time.fromisoformat(queue.close)
    return opens <= now.time().replace(tzinfo=None) < closes


def next_opening(queue: QueueConfig, now: datetime, horizon_days: int = 31) -> datetime | None:
    """The next moment the queue opens after `now`, or None within the horizon."""
    opens = time.fromisoformat(queue.open)
    for offset in range(horizon_days + 1):
        day = (now + timedelta(days=offset)).date()
        candidate = datetime.combine(day, opens, tzinfo=now.tzinfo)
        if candidate > now and is_open(queue, candidate):
            return candidate
    return None


def local_now(seconds: float, timezone: str) -> datetime:
    return datetime.fromtimestamp(seconds, ZoneInfo(timezone))
