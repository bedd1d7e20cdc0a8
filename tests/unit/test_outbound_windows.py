"""Calling windows across time zones and daylight-saving changes (outbound/windows.py).

Instants are built from explicit UTC datetimes (an injected clock value), never time.time()."""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from ccengine.config import OutboundConfig
from ccengine.outbound.windows import CallingWindow

WEEKDAYS = CallingWindow(time(9), time(17), frozenset(range(5)))


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def local(ts: float, tz: str) -> datetime:
    return datetime.fromtimestamp(ts, ZoneInfo(tz))


def test_same_instant_is_open_in_one_zone_and_closed_in_another():
    """10:00 in Shanghai (02:00 UTC, Tuesday) is open there and 22:00 Monday in New York."""
    now = utc(2025, 6, 3, 2, 0)
    assert WEEKDAYS.is_open(now, "Asia/Shanghai")
    assert not WEEKDAYS.is_open(now, "America/New_York")


def test_next_opening_is_09_00_local_in_the_customer_zone():
    """A job due at 22:00 Monday New York time waits until 09:00 Tuesday New York time."""
    now = utc(2025, 6, 3, 2, 0)
    opening = WEEKDAYS.next_opening(now, "America/New_York")
    assert local(opening, "America/New_York") == datetime(2025, 6, 3, 9, 0,
                                                           tzinfo=ZoneInfo("America/New_York"))
    assert opening == utc(2025, 6, 3, 13, 0)


def test_open_instant_is_its_own_next_opening():
    """Inside the window the job may be dialled now."""
    now = utc(2025, 6, 3, 2, 0)
    assert WEEKDAYS.next_opening(now, "Asia/Shanghai") == now


def test_window_end_is_exclusive_and_weekend_waits_for_monday():
    """17:00 Friday is closed; the next opening is 09:00 Monday local time."""
    friday_17 = datetime(2025, 6, 6, 17, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    assert not WEEKDAYS.is_open(friday_17, "Europe/Berlin")
    opening = WEEKDAYS.next_opening(friday_17, "Europe/Berlin")
    assert local(opening, "Europe/Berlin").replace(tzinfo=None) == datetime(2025, 6, 9, 9, 0)


def test_spring_forward_moves_the_opening_in_utc_not_in_local_time():
    """US DST starts Sunday 2025-03-09: Friday opens 14:00 UTC (EST), Monday 13:00 UTC (EDT)."""
    friday_evening = utc(2025, 3, 7, 23, 0)         # 18:00 EST Friday
    opening = WEEKDAYS.next_opening(friday_evening, "America/New_York")
    assert opening == utc(2025, 3, 10, 13, 0)
    assert local(opening, "America/New_York").hour == 9
    before = WEEKDAYS.next_opening(utc(2025, 3, 6, 23, 0), "America/New_York")
    assert before == utc(2025, 3, 7, 14, 0)


def test_fall_back_keeps_09_00_local_in_europe():
    """Berlin leaves DST on Sunday 2025-10-26: Monday opens at 08:00 UTC instead of 07:00."""
    saturday = utc(2025, 10, 25, 12, 0)
    opening = WEEKDAYS.next_opening(saturday, "Europe/Berlin")
    assert opening == utc(2025, 10, 27, 8, 0)
    assert local(opening, "Europe/Berlin").hour == 9


def test_window_starting_inside_the_dst_gap_never_opens_early():
    """A 02:30 start on the spring-forward day (02:00-03:00 does not exist) opens at or after
    03:00 local, never before the nominal start."""
    night = CallingWindow(time(2, 30), time(6), frozenset(range(7)))
    opening = night.next_opening(utc(2025, 3, 9, 5, 0), "America/New_York")   # 00:00 EST
    assert opening >= utc(2025, 3, 9, 7, 0)                                    # 03:00 EDT
    assert night.is_open(opening, "America/New_York")


def test_closed_dates_and_open_days_come_from_the_config():
    """A closed date in the config is skipped; the next open day's 09:00 is used."""
    window = CallingWindow.from_config(OutboundConfig(closed_dates=("2025-06-03",)))
    now = utc(2025, 6, 3, 2, 0)                        # Tuesday 10:00 in Shanghai
    assert not window.is_open(now, "Asia/Shanghai")
    opening = window.next_opening(now, "Asia/Shanghai")
    assert local(opening, "Asia/Shanghai").date() == date(2025, 6, 4)
    assert local(opening, "Asia/Shanghai").time() == time(9)


def test_window_without_open_days_never_opens():
    """No open day at all: no next opening (the job waits a day and is looked at again)."""
    assert CallingWindow(time(9), time(17), frozenset()).next_opening(utc(2025, 1, 1), "UTC") is None


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "America/New_York", "Europe/Berlin",
                                "Australia/Sydney"])
def test_next_opening_is_always_inside_the_window(tz):
    """For every hour of a DST-changing month, the next opening is open and not earlier."""
    start = utc(2025, 3, 1)
    for hour in range(0, 31 * 24, 7):
        now = start + hour * 3600
        opening = WEEKDAYS.next_opening(now, tz)
        assert opening >= now and WEEKDAYS.is_open(opening, tz)
