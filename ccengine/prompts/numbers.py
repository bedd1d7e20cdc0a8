"""How numbers, digits, durations and times of day are spoken: pure composition into sound pieces.

Every language speaks numbers from the same small set of rendered pieces, which the builder
renders from text like any prompt (so Chinese needs no stock `digits/` files, which Asterisk's
core sounds do not ship for `zh`):

- `num/<n>` for 0..99 (the text is the numeral itself; espeak-ng reads it in the voice's language),
- `digit/<d>` for 0..9 (read one by one: phone and agent numbers; zh reads 1 as 幺),
- `word/<key>` for unit and time words (hundred, 千, 分钟, a.m., 下午 ...).

A composer turns a value into piece stems (relative to `ccengine/`); the player prefixes the
language directory. Composition is the only language-specific code; the words are in the
catalogue so an admin can change or record them.
"""
from __future__ import annotations

import re
from datetime import time

PLAIN_NUMBERS = range(100)
DIGIT_RE = re.compile(r"^[0-9]{1,32}$")


class NumberError(ValueError):
    """A value that cannot be spoken with its placeholder kind."""


def clock_value(value: object) -> tuple[int, int]:
    """(hour, minute) from a `datetime.time`, an hour as int, or 'HH:MM' text."""
    if isinstance(value, time):
        return value.hour, value.minute
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 23:
        return value, 0
    if isinstance(value, str):
        match = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", value)
        if match:
            return int(match.group(1)), int(match.group(2))
    raise NumberError(f"{value!r} is not a time of day")


def cardinal(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NumberError(f"{value!r} is not a non-negative integer")
    return value


def digit_string(value: object) -> str:
    """Digits of a phone or agent number; anything but 0-9 is refused (it may come from DTMF)."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not DIGIT_RE.fullmatch(text):
        raise NumberError(f"{value!r} is not a digit string")
    return text


def digits(value: object) -> list[str]:
    return [f"digit/{d}" for d in digit_string(value)]


class EnglishNumbers:
    """English: 'one thousand twenty three', '1 minute' / '2 minutes', '6:30 p.m.'."""

    words = ("hundred", "thousand", "million", "minute", "minutes", "second", "seconds",
             "hour", "hours", "am", "pm", "oh")

    def number(self, n: int, count: bool = False) -> list[str]:
        if n < 100:
            return [f"num/{n}"]
        for size, word in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
            if n >= size:
                if n // size >= 1000:  # beyond a thousand million: read it digit by digit
                    return digits(n)
                head = self.number(n // size) + [f"word/{word}"]
                rest = n % size
                return head + (self.number(rest) if rest else [])
        raise AssertionError("unreachable")

    def duration(self, n: int, unit: str) -> list[str]:
        return self.number(n) + [f"word/{unit}" if n == 1 else f"word/{unit}s"]

    def clock(self, hour: int, minute: int) -> list[str]:
        pieces = self.number(hour % 12 or 12)
        if minute:
            pieces += (["word/oh"] if minute < 10 else []) + self.number(minute)
        return pieces + ["word/am" if hour < 12 else "word/pm"]


class ChineseNumbers:
    """Mandarin: 一千零二十三, 一百一十五, 两千, and 两 for a bare 2 before a measure word."""

    words = ("hundred", "thousand", "ten_thousand", "zero", "two_measure", "minute", "second", "hour",
             "early_morning", "morning", "noon", "afternoon", "evening", "dian", "half", "fen")

    def number(self, n: int, count: bool = False) -> list[str]:
        if n == 2 and count:
            return ["word/two_measure"]
        if n < 100:
            return [f"num/{n}"]
        if n >= 100_000_000:
            return digits(n)
        high, low = divmod(n, 10_000)
        if not high:
            return self._below_10000(n)
        pieces = self._below_10000(high) + ["word/ten_thousand"]
        if low:
            if low < 1000:
                pieces.append("word/zero")
            pieces += self._below_10000(low)
        return pieces

    def _below_10000(self, n: int) -> list[str]:
        pieces: list[str] = []
        started = False
        gap = False  # a skipped unit inside the number is spoken once as 零
        for size, word in ((1000, "thousand"), (100, "hundred")):
            d = n // size % 10
            if d:
                if gap:
                    pieces.append("word/zero")
                    gap = False
                # 两千 / 两百: the leading 2 of a unit is said 两 in everyday Mandarin.
                pieces += ["word/two_measure" if d == 2 else f"num/{d}", f"word/{word}"]
                started = True
            elif started:
                gap = True
        rest = n % 100
        if rest:
            if started and (gap or rest < 10):
                pieces.append("word/zero")
            # after 百/千 the tens of 10-19 carry their 一: 一百一十五, not 一百十五
            pieces += ["num/1", f"num/{rest}"] if started and 10 <= rest <= 19 else [f"num/{rest}"]
        return pieces

    def duration(self, n: int, unit: str) -> list[str]:
        return self.number(n, count=True) + [f"word/{unit}"]

    def clock(self, hour: int, minute: int) -> list[str]:
        period = ("early_morning" if hour < 6 else "morning" if hour < 12 else
                  "noon" if hour == 12 else "afternoon" if hour < 18 else "evening")
        pieces = [f"word/{period}"] + self.number(hour % 12 or 12, count=True) + ["word/dian"]
        if minute == 30:
            pieces.append("word/half")
        elif minute:
            pieces += (["word/zero"] if minute < 10 else []) + self.number(minute) + ["word/fen"]
        return pieces


Composer = EnglishNumbers | ChineseNumbers
COMPOSERS: dict[str, Composer] = {"en": EnglishNumbers(), "zh": ChineseNumbers()}

# placeholder kind -> how it is spoken
KINDS = ("number", "count", "digits", "minutes", "seconds", "hours", "clock")


def compose(composer: EnglishNumbers | ChineseNumbers, kind: str, value: object) -> list[str]:
    """Piece stems (relative to `ccengine/`) speaking `value` as `kind`."""
    if kind == "digits":
        return digits(value)
    if kind == "clock":
        return composer.clock(*clock_value(value))
    n = cardinal(value)
    if kind == "number":
        return composer.number(n)
    if kind == "count":
        return composer.number(n, count=True)
    if kind == "minutes":
        # a wait is never announced as "0 minutes": under a minute is said as about one minute
        return composer.duration(max(n, 1), "minute")
    if kind in ("seconds", "hours"):
        return composer.duration(n, kind[:-1])
    raise NumberError(f"unknown placeholder kind {kind!r}")


def piece_texts(composer: EnglishNumbers | ChineseNumbers, words: dict[str, str],
                digit_names: list[str] | None) -> dict[str, str]:
    """Stem -> text for every number piece a language needs."""
    out = {f"num/{n}": str(n) for n in PLAIN_NUMBERS}
    names = digit_names or [str(d) for d in range(10)]
    out.update({f"digit/{d}": names[d] for d in range(10)})
    out.update({f"word/{key}": words[key] for key in composer.words})
    return out
