"""The Prompter: STREAM FILE names per language, digit collection, and the fallback chain.

The fake channel stands for agi.channel.AgiChannel: it raises PlaybackFailed where Asterisk
answers STREAM FILE of a missing file with `200 result=-1 endpos=0` (capture
transcripts2/agi1_suite.agi.txt, `STREAM FILE lab2-no-such-file ""`).
"""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ccengine.agi.channel import PlaybackFailed
from ccengine.prompts.catalogue import PromptValueError, load_catalogue
from ccengine.prompts.metrics import PromptMetrics
from ccengine.prompts.player import ALL_KEYS, Prompter


class FakeChannel:
    """Records the media commands; files in `missing` fail, `keys` are pressed in order."""

    def __init__(self, missing=(), press=None, digits=()):
        self.calls: list[tuple] = []
        self.missing = set(missing)
        self.press = press or {}       # file name -> key pressed while it plays
        self.digits = list(digits)     # answers of WAIT FOR DIGIT ('' = timeout)

    async def stream_file(self, name, escape_digits=""):
        self.calls.append(("STREAM FILE", name, escape_digits))
        if name in self.missing:
            raise PlaybackFailed(f"STREAM FILE {name} answered -1")
        return self.press.get(name, "")

    async def wait_for_digit(self, timeout_ms):
        self.calls.append(("WAIT FOR DIGIT", timeout_ms))
        return self.digits.pop(0) if self.digits else ""


def run(coro):
    results = []
    Deferred.fromCoroutine(coro).addBoth(results.append)
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def prompter(registry):
    catalogue = load_catalogue({"promo": {"en": "Only in English."}}, company="ACME")
    return Prompter(catalogue, PromptMetrics(registry))


def missing(registry, prompt, language, reason):
    return registry.get_sample_value("ccengine_prompt_missing_total",
                                     {"prompt": prompt, "language": language, "reason": reason})


def files(channel):
    return [c[1] for c in channel.calls if c[0] == "STREAM FILE"]


def test_position_announcement_in_chinese(prompter):
    """zh: 第三位, 约两分钟 as STREAM FILE of zh/ccengine/... pieces in order."""
    channel = FakeChannel()
    assert run(prompter.play(channel, "position_announce", "zh", position=3, wait_minutes=2)) == ""
    assert files(channel) == ["zh/ccengine/position_announce-1", "zh/ccengine/num/3",
                              "zh/ccengine/position_announce-2", "zh/ccengine/word/two_measure",
                              "zh/ccengine/word/minute"]


def test_position_announcement_in_english(prompter):
    """en: 'number 3 ... about 1 minute' with the singular word."""
    channel = FakeChannel()
    run(prompter.play(channel, "position_announce", "en", position=3, wait_minutes=1))
    assert files(channel) == ["en/ccengine/position_announce-1", "en/ccengine/num/3",
                              "en/ccengine/position_announce-2", "en/ccengine/num/1",
                              "en/ccengine/word/minute"]


def test_agent_number_is_read_digit_by_digit(prompter):
    """'Agent 1023 will serve you' reads the agent number one digit at a time."""
    channel = FakeChannel()
    run(prompter.play(channel, "agent_number", "en", agent="1023"))
    assert files(channel) == ["en/ccengine/agent_number-1", "en/ccengine/digit/1",
                              "en/ccengine/digit/0", "en/ccengine/digit/2", "en/ccengine/digit/3",
                              "en/ccengine/agent_number-2"]


def test_escape_digit_stops_the_prompt(prompter):
    """A key pressed during a piece ends the prompt and is returned."""
    channel = FakeChannel(press={"zh/ccengine/menu": "3"})
    assert run(prompter.play(channel, "menu", "zh", "0123")) == "3"
    assert channel.calls == [("STREAM FILE", "zh/ccengine/menu", "0123")]


def test_missing_file_falls_back_to_the_other_language(prompter, registry):
    """A zh piece answering -1 replays the whole prompt in en, logged and counted."""
    channel = FakeChannel(missing={"zh/ccengine/position_announce-2"})
    run(prompter.play(channel, "position_announce", "zh", position=3, wait_minutes=5))
    assert files(channel)[:3] == ["zh/ccengine/position_announce-1", "zh/ccengine/num/3",
                                  "zh/ccengine/position_announce-2"]
    assert files(channel)[3:] == ["en/ccengine/position_announce-1", "en/ccengine/num/3",
                                  "en/ccengine/position_announce-2", "en/ccengine/num/5",
                                  "en/ccengine/word/minutes"]
    assert missing(registry, "position_announce", "zh", "playback_failed") == 1


def test_no_text_in_the_language_falls_back_without_trying(prompter, registry):
    """A prompt with no zh text is played in en straight away and counted as no_text."""
    channel = FakeChannel()
    run(prompter.play(channel, "promo", "zh"))
    assert files(channel) == ["en/ccengine/promo"]
    assert missing(registry, "promo", "zh", "no_text") == 1


def test_every_language_missing_plays_the_stock_sound(prompter, registry):
    """When no language can play the prompt the caller hears the stock sound, never silence."""
    channel = FakeChannel(missing={"zh/ccengine/goodbye", "en/ccengine/goodbye"})
    run(prompter.play(channel, "goodbye", "zh"))
    assert files(channel) == ["zh/ccengine/goodbye", "en/ccengine/goodbye", "beep"]
    assert registry.get_sample_value("ccengine_prompt_stock_fallback_total",
                                     {"prompt": "goodbye"}) == 1


def test_unknown_prompt_plays_the_stock_sound(prompter, registry):
    """A name the catalogue does not know is counted under a bounded label and beeps."""
    channel = FakeChannel()
    run(prompter.play(channel, "no_such_prompt", "en"))
    assert files(channel) == ["beep"]
    assert missing(registry, "_unknown", "en", "unknown_prompt") == 1


def test_stock_sound_failing_too_ends_quietly(prompter):
    """If even the stock sound fails, play() returns '' instead of raising mid-call."""
    channel = FakeChannel(missing={"en/ccengine/goodbye", "zh/ccengine/goodbye", "beep"})
    assert run(prompter.play(channel, "goodbye", "en")) == ""


def test_unconfigured_language_uses_the_default(prompter, registry):
    """A language that is not configured (e.g. from a customer record) plays the default one."""
    channel = FakeChannel()
    run(prompter.play(channel, "goodbye", "fr\n"))
    assert files(channel) == ["zh/ccengine/goodbye"]
    assert registry.get_sample_value("ccengine_prompt_bad_language_total") == 1


def test_bad_value_raises_before_anything_is_played(prompter):
    """An unspeakable value is a PromptValueError and nothing is streamed."""
    channel = FakeChannel()
    with pytest.raises(PromptValueError):
        run(prompter.play(channel, "callback_confirm_number", "en", number="12#4"))
    assert channel.calls == []


def test_ask_collects_digits_after_the_prompt(prompter):
    """ask() plays with every key as escape digit, then reads digits until '#'."""
    channel = FakeChannel(digits=["5", "5", "#"])
    assert run(prompter.ask(channel, "callback_enter_number", "en", 20, 5000)) == "55"
    assert channel.calls == [("STREAM FILE", "en/ccengine/callback_enter_number", ALL_KEYS),
                             ("WAIT FOR DIGIT", 5000), ("WAIT FOR DIGIT", 5000),
                             ("WAIT FOR DIGIT", 5000)]


def test_ask_keeps_the_key_that_interrupted_the_prompt(prompter):
    """A key pressed during the prompt is the first digit; one-key menus return at once."""
    channel = FakeChannel(press={"zh/ccengine/keep_waiting_or_callback": "2"})
    assert run(prompter.ask(channel, "keep_waiting_or_callback", "zh", 1, 5000)) == "2"
    assert [c[0] for c in channel.calls] == ["STREAM FILE"]


def test_ask_returns_empty_on_timeout(prompter):
    """No key within the timeout gives ''."""
    channel = FakeChannel(digits=[""])
    assert run(prompter.ask(channel, "menu", "zh", 1, 4000)) == ""


def test_other_language(prompter):
    """The language offer plays in the other language: en for a zh caller and back."""
    assert prompter.other_language("zh") == "en"
    assert prompter.other_language("en") == "zh"
