"""The caller's place (waiting/priority.py) and the dialplan that computes it
([ccengine-first-entry] and [ccengine-wait] in dialplans/extensions_ccengine.conf).

app_queue's order rule (apps/app_queue.c join_queue(): a joining caller goes behind every
caller of higher or equal priority) is modelled by `join()` below, as the docstring of
waiting/priority.py quotes it; the dialplan arithmetic is checked against the engine's formula
by reading the constants out of the shipped dialplan."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ccengine.config import load_config
from ccengine.waiting import priority

ROOT = Path(__file__).resolve().parents[2]
DIALPLAN = (ROOT / "dialplans" / "extensions_ccengine.conf").read_text()
GLOBALS = (ROOT / "dialplans" / "globals_ccengine.conf").read_text()


def join(line: list[tuple[str, int]], who: str, prio: int) -> None:
    """app_queue join_queue(): insert before the first caller with a lower priority."""
    at = next((i for i, (_, p) in enumerate(line) if prio > p), len(line))
    line.insert(at, (who, prio))


def test_earlier_first_entry_has_the_higher_priority_and_base_wins():
    """Within one base an earlier first entry (0.01 s apart) ranks higher; any VIP base 10 beats
    every base 0; the largest value fits the C int app_queue parses."""
    t = 1_800_000_000.0
    p = [priority.queue_priority(0, t + dt) for dt in (0.0, 0.01, 5.0)]
    assert p[0] > p[1] > p[2]
    assert priority.queue_priority(10, t + 80_000) > priority.queue_priority(0, t)
    assert priority.queue_priority(priority.MAX_BASE + 50, t) <= priority.MAX_PRIORITY < 2**31


def test_re_entries_in_any_order_restore_the_first_entry_order():
    """Callers A, B, C (base 0) and a VIP D queue in that order; A, then C, then B leave for an
    announcement and come back with their own QUEUE_PRIO: the order is D, A, B, C again."""
    t = 1_800_000_000.0
    prios = {"A": priority.queue_priority(0, t), "B": priority.queue_priority(0, t + 1),
             "C": priority.queue_priority(0, t + 2), "D": priority.queue_priority(10, t + 3)}
    line: list[tuple[str, int]] = []
    for who in "ABCD":
        join(line, who, prios[who])
    for who in "ACB":
        line.remove((who, prios[who]))
        join(line, who, prios[who])
    assert [who for who, _ in line] == ["D", "A", "B", "C"]


def test_the_order_wraps_once_a_day_at_the_rollover():
    """Just before the rollover instant the place is the smallest, just after the largest."""
    day = 1_800_000_000 - 1_800_000_000 % 86400        # 00:00 UTC
    rollover = day + priority.DEFAULT_ROLLOVER
    assert priority.place(rollover - 0.01) == 0
    assert priority.place(rollover) == priority.SCALE - 1


def test_parse_accepts_only_digits_in_the_c_int_range():
    assert priority.parse("17279999") == 17_279_999
    for bad in ("", None, "-1", "1e5", "１２", str(priority.MAX_PRIORITY + 1), "9" * 11):
        assert priority.parse(bad) is None


def test_base_is_read_from_either_the_hotline_or_a_full_priority():
    """CC_PRIORITY '10' (hotline) and a full QUEUE_PRIO both give base 10; garbage gives 0."""
    assert priority.base_of("10") == 10
    assert priority.base_of(str(priority.queue_priority(10, 1_800_000_000))) == 10
    assert priority.base_of("x") == priority.base_of(None) == priority.base_of("-5") == 0


def _dialplan_place(hundredths: int, rollover: str) -> int:
    """The [ccengine-first-entry] expression, with the constants read from the shipped file."""
    m = re.search(r"CCENGINE_PLACE=\$\[(\d+) - \(\(\$\{STRFTIME\(,,%s%2q\)\} - "
                  r"\$\{FILTER\(0-9,\$\{GLOBAL\(CCENGINE_PLACE_ROLLOVER\)\}\)\}00\) % (\d+)\)\]",
                  DIALPLAN)
    assert m, "the place expression of [ccengine-first-entry] changed: update this test"
    top, scale = int(m.group(1)), int(m.group(2))
    return top - (hundredths - int(rollover + "00")) % scale


@pytest.mark.parametrize("epoch", [1_800_000_000.0, 1_800_071_999.9, 1_800_072_000.0,
                                   1_796_187_580.967])
def test_dialplan_computes_the_engines_place(epoch):
    """STRFTIME %s%2q gives the epoch in hundredths; the dialplan's arithmetic, its clamp of the
    base and its scale equal waiting/priority.py, and the shipped rollover equals the engine's
    default (waiting.place_rollover)."""
    rollover = re.search(r"^CCENGINE_PLACE_ROLLOVER=(\d+)$", GLOBALS, re.M).group(1)
    assert int(rollover) == priority.DEFAULT_ROLLOVER == load_config(None).waiting.place_rollover
    assert _dialplan_place(int(round(epoch * 100, 6)), rollover) == priority.place(epoch)
    assert f"Set(CCENGINE_BASE={priority.MAX_BASE})" in DIALPLAN
    assert f"$[${{CCENGINE_BASE}} > {priority.MAX_BASE}]" in DIALPLAN
    assert f"$[${{CCENGINE_BASE}} * {priority.SCALE} + " in DIALPLAN
