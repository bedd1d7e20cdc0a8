"""Routing decisions, caller-number and name sanitising, business hours (pure functions)."""
from datetime import datetime
from zoneinfo import ZoneInfo

from ccengine.calls import hours, routing
from ccengine.config import load_config
from ccengine.calls.customers import CallerProfile

CONFIG = load_config(None)
TZ = ZoneInfo("Asia/Shanghai")


def test_menu_keys_map_to_queue_category_and_kind():
    """1 inquiry, 2 lookup, 3 complaint (own queue), 0 other, as SERVICE-STANDARDS.md sorts calls."""
    new = CallerProfile(number="13800000000")
    got = {d: routing.from_menu(d, CONFIG.ivr, new, CONFIG.callers) for d in "1230"}
    assert (got["1"].queue, got["1"].category, got["1"].kind) == ("inbound", "30", "inquiry")
    assert (got["2"].queue, got["2"].category, got["2"].kind) == ("inbound", "40", "lookup")
    assert (got["3"].queue, got["3"].category, got["3"].kind) == ("complaint", "10", "complaint")
    assert (got["0"].queue, got["0"].category, got["0"].kind) == ("inbound", "90", "other")


def test_no_key_or_unknown_key_gives_the_default_route():
    """No input and keys outside the menu fall back to the default queue and category."""
    new = CallerProfile(number="1")
    for digit in (None, "", "7", "#"):
        decision = routing.from_menu(digit, CONFIG.ivr, new, CONFIG.callers)
        assert (decision.queue, decision.category) == ("inbound", "90")


def test_vip_callers_get_the_configured_priority():
    """VIP customers are routed with the VIP priority, known ones with theirs, new ones with 0."""
    assert routing.from_menu("1", CONFIG.ivr, CallerProfile("1", tier="vip"), CONFIG.callers).priority == 10
    assert routing.from_menu("1", CONFIG.ivr, CallerProfile("1", tier="known"), CONFIG.callers).priority == 0
    assert routing.from_menu("1", CONFIG.ivr, CallerProfile("1"), CONFIG.callers).priority == 0


def test_caller_number_accepts_only_plausible_numbers():
    """Anonymous, textual or hostile caller IDs become '' and are never looked up."""
    assert routing.caller_number("13800138000") == "13800138000"
    assert routing.caller_number("+8613800138000") == "+8613800138000"
    for bad in ("caller", "anonymous", "", "123\n456", "1" * 40, "12", "1@trunk", "123&PJSIP/x"):
        assert routing.caller_number(bad) == ""


def test_display_name_strips_control_and_separator_characters():
    """A customer name shown to agents loses control characters, line breaks and U+2028."""
    assert routing.display_name('Zhang "San"\n张三\x0b\u2028x') == 'Zhang "San"张三x'
    assert len(routing.display_name("a" * 500)) == 48


def test_call_id_is_the_uniqueid_or_a_digest():
    """A normal uniqueid is kept; an odd one becomes a fixed-size digest usable as a key."""
    assert routing.safe_call_id("cclab-1795364563.0") == "cclab-1795364563.0"
    odd = routing.safe_call_id("x y\nz")
    assert odd.startswith("x-") and len(odd) == 26


def test_hours_and_closed_days():
    """A queue is open inside its hours on its days, closed outside, on closed dates and days."""
    q = CONFIG.queues["inbound"]
    assert hours.is_open(q, datetime(2026, 11, 23, 8, 0, tzinfo=TZ))
    assert not hours.is_open(q, datetime(2026, 11, 23, 7, 59, tzinfo=TZ))
    assert not hours.is_open(q, datetime(2026, 11, 23, 21, 0, tzinfo=TZ))
    closed = q.__class__(**{**q.__dict__, "closed_dates": ("2026-11-23",), "days": ("mon", "tue")})
    assert not hours.is_open(closed, datetime(2026, 11, 23, 12, 0, tzinfo=TZ))
    assert hours.is_open(closed, datetime(2026, 11, 24, 12, 0, tzinfo=TZ))
    assert not hours.is_open(closed, datetime(2026, 11, 25, 12, 0, tzinfo=TZ))
    assert hours.next_opening(closed, datetime(2026, 11, 23, 12, 0, tzinfo=TZ)) == \
        datetime(2026, 11, 24, 8, 0, tzinfo=TZ)
