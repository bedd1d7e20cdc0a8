"""How numbers, digits, durations and times of day are composed from rendered pieces."""
from __future__ import annotations

import pytest

from ccengine.prompts.numbers import COMPOSERS, NumberError, compose

EN, ZH = COMPOSERS["en"], COMPOSERS["zh"]


@pytest.mark.parametrize("n, pieces", [
    (0, ["num/0"]),
    (15, ["num/15"]),
    (100, ["num/1", "word/hundred"]),
    (350, ["num/3", "word/hundred", "num/50"]),
    (1023, ["num/1", "word/thousand", "num/23"]),
    (120_005, ["num/1", "word/hundred", "num/20", "word/thousand", "num/5"]),
])
def test_english_numbers(n, pieces):
    """English numbers are said as words: 1023 is 'one thousand twenty-three'."""
    assert compose(EN, "number", n) == pieces


@pytest.mark.parametrize("n, pieces", [
    (2, ["num/2"]),
    (15, ["num/15"]),
    (100, ["num/1", "word/hundred"]),
    (105, ["num/1", "word/hundred", "word/zero", "num/5"]),
    (115, ["num/1", "word/hundred", "num/1", "num/15"]),
    (200, ["word/two_measure", "word/hundred"]),
    (1023, ["num/1", "word/thousand", "word/zero", "num/23"]),
    (1100, ["num/1", "word/thousand", "num/1", "word/hundred"]),
    (10050, ["num/1", "word/ten_thousand", "word/zero", "num/50"]),
    (12345, ["num/1", "word/ten_thousand", "word/two_measure", "word/thousand", "num/3",
             "word/hundred", "num/45"]),
])
def test_chinese_numbers(n, pieces):
    """Mandarin numbers: 一百零五, 一百一十五, 两百, 一千零二十三, 一万零五十."""
    assert compose(ZH, "number", n) == pieces


def test_chinese_two_before_measure_word():
    """A bare 2 before a measure word is 两 (两分钟, 两位), but 二 as an ordinal (第二位)."""
    assert compose(ZH, "minutes", 2) == ["word/two_measure", "word/minute"]
    assert compose(ZH, "count", 2) == ["word/two_measure"]
    assert compose(ZH, "number", 2) == ["num/2"]
    assert compose(ZH, "minutes", 12) == ["num/12", "word/minute"]


def test_english_minutes_singular_and_plural():
    """English says '1 minute' and '2 minutes'; a wait under a minute is said as one minute."""
    assert compose(EN, "minutes", 1) == ["num/1", "word/minute"]
    assert compose(EN, "minutes", 2) == ["num/2", "word/minutes"]
    assert compose(EN, "minutes", 0) == ["num/1", "word/minute"]
    assert compose(EN, "seconds", 95) == ["num/95", "word/seconds"]


@pytest.mark.parametrize("value, pieces", [
    ("15", ["digit/1", "digit/5"]),
    ("100", ["digit/1", "digit/0", "digit/0"]),
    (1023, ["digit/1", "digit/0", "digit/2", "digit/3"]),
])
def test_agent_and_phone_numbers_read_digit_by_digit(value, pieces):
    """Digits placeholders read each digit on its own: agent 1023 is 'one zero two three'."""
    assert compose(EN, "digits", value) == pieces
    assert compose(ZH, "digits", value) == pieces


@pytest.mark.parametrize("value", ["12a", "1\n2", "", "+4930", True, None])
def test_digits_refuse_anything_but_digits(value):
    """A digit string from DTMF or caller ID with anything but 0-9 is refused, never spoken."""
    with pytest.raises(NumberError):
        compose(EN, "digits", value)


@pytest.mark.parametrize("value", [-1, 2.5, "3", True])
def test_numbers_refuse_non_integers(value):
    """Numbers must be non-negative integers."""
    with pytest.raises(NumberError):
        compose(EN, "number", value)


def test_times_of_day():
    """Opening hours: 08:00 is 'eight a.m.' / 上午八点, 21:30 is 'nine thirty p.m.' / 晚上九点半."""
    assert compose(EN, "clock", "08:00") == ["num/8", "word/am"]
    assert compose(EN, "clock", "21:30") == ["num/9", "num/30", "word/pm"]
    assert compose(EN, "clock", "12:05") == ["num/12", "word/oh", "num/5", "word/pm"]
    assert compose(ZH, "clock", "08:00") == ["word/morning", "num/8", "word/dian"]
    assert compose(ZH, "clock", "21:30") == ["word/evening", "num/9", "word/dian", "word/half"]
    assert compose(ZH, "clock", "14:00") == ["word/afternoon", "word/two_measure", "word/dian"]
    with pytest.raises(NumberError):
        compose(ZH, "clock", "25:00")
