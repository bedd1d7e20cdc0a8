"""Floor figures (ccengine/console/window.py): the same definitions as docs/metrics.md."""
from twisted.internet.task import Clock

from ccengine.config import load_config
from ccengine.console.window import WINDOW, QueueWindows

NOW = 1796210000.0          # 2026-12-02 19:13 in Asia/Shanghai


def windows(now=NOW):
    clock = Clock()
    clock.advance(now)
    config = load_config(None)
    return QueueWindows(config.queues, config.company.timezone, clock), clock


def test_service_level_counts_short_abandons_out_and_asa_is_answered_waits():
    w, clock = windows()
    for _ in range(4):
        w.offered("inbound", NOW)
    w.answered("inbound", 10.0, NOW)       # within 15 s
    w.answered("inbound", 20.0, NOW)       # outside
    w.abandoned("inbound", 3.0, NOW)       # short (< 5 s): not in the service level
    w.abandoned("inbound", 40.0, NOW)
    today = w.today("inbound")
    assert today.service_level == 1 / 3    # 1 within / (2 answered + 2 abandoned - 1 short)
    assert today.asa == 15.0
    assert today.abandon_rate == 0.5
    assert w.recent("inbound").service_level == 1 / 3


def test_last_30_minutes_forget_older_outcomes_today_keeps_them():
    w, clock = windows()
    w.offered("inbound", NOW)
    w.answered("inbound", 5.0, NOW)
    w.completed("inbound", "1001", 120.0, NOW)
    clock.advance(WINDOW + 1)
    w.offered("inbound", clock.seconds())
    assert w.recent("inbound").offered == 1 and w.recent("inbound").answered == 0
    assert w.recent("inbound").handle_time is None
    assert w.today("inbound").offered == 2 and w.today("inbound").handle_time == 120.0
    assert w.arrival_rate("inbound") == 1 / WINDOW
    assert w.handled == {"1001": 1}


def test_a_new_local_day_starts_from_zero():
    w, clock = windows()
    w.offered("inbound", NOW)
    w.completed("inbound", "1001", 60.0, NOW)
    clock.advance(6 * 3600)                 # past midnight in Shanghai
    assert w.today("inbound").offered == 0
    assert w.handled == {}


def test_unknown_queue_and_odd_member_names_are_ignored():
    w, _ = windows()
    w.offered("nosuchqueue", NOW)
    w.completed("inbound", "Agent 1001", 60.0, NOW)   # a static member, not an agent number
    assert w.handled == {}
    assert w.today("inbound").talked == 1
