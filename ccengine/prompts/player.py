"""Prompter: plays catalogue prompts on an AGI channel, in the caller's language, never in silence.

Every piece is played with STREAM FILE and an explicit language path, `<lang>/ccengine/<stem>`,
so what the caller hears follows the language the engine chose whatever CHANNEL(language) is.
Asterisk's file lookup (main/file.c, `fileexists_core`) tries `<channel language>/<name>` first
and then `<name>` without a language, relative to its sounds directory; `zh/ccengine/welcome`
on an `en` channel is found at the second step (see docs/prompts.md).

Fallback chain for one prompt: the requested language; then the other configured languages in
order; then the stock Asterisk sound (`beep` by default). A language is skipped when the
catalogue has no text for it, or when any of its pieces answers STREAM FILE with -1
(PlaybackFailed: the file is missing); each skip is logged and counted. A piece failing mid-
prompt restarts the whole prompt in the next language rather than mixing languages in one
sentence.
"""
from __future__ import annotations

from typing import Protocol
from collections.abc import Iterable

from twisted.logger import Logger

from ccengine.agi.channel import PlaybackFailed
from ccengine.prompts.catalogue import SOUND_DIR, Catalogue, PromptValueError
from ccengine.prompts.metrics import PromptMetrics

ALL_KEYS = "0123456789*#"


class PromptChannel(Protocol):
    """The part of agi.channel.AgiChannel the player uses."""

    async def stream_file(self, name: str, escape_digits: str = "") -> str: ...

    async def wait_for_digit(self, timeout_ms: int) -> str: ...


class Prompter:
    log = Logger()

    def __init__(self, catalogue: Catalogue, metrics: PromptMetrics,
                 stock_sound: str = "beep") -> None:
        self.catalogue = catalogue
        self.metrics = metrics
        # 'beep' is in Asterisk's core sounds: STREAM FILE beep answered 200 result=0 in the
        # transcripts2/agi1_suite capture.
        self.stock_sound = stock_sound

    @property
    def default_language(self) -> str:
        return self.catalogue.default_language

    def language(self, lang: str | None) -> str:
        """`lang` when configured, else the default language (a bad value is counted)."""
        if lang in self.catalogue.languages:
            return lang
        if lang:
            self.log.warn("prompt language {lang!r:.20} is not configured; using {default}",
                          lang=lang, default=self.default_language)
            self.metrics.bad_language.inc()
        return self.default_language

    def other_language(self, lang: str) -> str:
        """The first configured language that is not `lang` (for 'press 9 for English')."""
        return next((other for other in self.catalogue.languages if other != lang), lang)

    def paths(self, name: str, lang: str, **values: object) -> list[str]:
        """The STREAM FILE names for prompt `name` in `lang` (raises PromptValueError)."""
        return [f"{lang}/{SOUND_DIR}/{stem}" for stem in self.catalogue.pieces(name, lang, values)]

    async def play(self, channel: PromptChannel, name: str, lang: str | None,
                   escape_digits: str = "", **values: object) -> str:
        """Play prompt `name`; returns the escape digit that interrupted it, or ''.

        Raises PromptValueError (before anything is played) when a placeholder value is missing
        or unspeakable: that is a bug in the caller of `play`, not a missing sound."""
        lang = self.language(lang)
        known = name in self.catalogue.prompts
        label = name if known else "_unknown"
        if known:
            # Values are checked against the requested language first, so a bad value never
            # turns into a silent fallback.
            self._check_values(name, values)
        for attempt in self._order(lang):
            if not known or not self.catalogue.has(name, attempt):
                self._missing(label, attempt, "unknown_prompt" if not known else "no_text")
                if not known:
                    break
                continue
            try:
                return await self._stream(channel, self.paths(name, attempt, **values), escape_digits)
            except PlaybackFailed as exc:
                self._missing(label, attempt, "playback_failed", str(exc))
        self.metrics.stock_fallback.labels(label).inc()
        self.log.error("prompt {name!r:.60}: no language could play it; playing {stock}",
                       name=name, stock=self.stock_sound)
        try:
            return await channel.stream_file(self.stock_sound, escape_digits)
        except PlaybackFailed as exc:
            self.log.error("stock sound {stock} failed too ({exc}); the prompt is skipped",
                           stock=self.stock_sound, exc=exc)
            return ""

    async def ask(self, channel: PromptChannel, name: str, lang: str | None, max_digits: int,
                  timeout_ms: int, terminator: str = "#", **values: object) -> str:
        """Play prompt `name` (any key interrupts it), then collect up to `max_digits` digits.

        The prompt is played piece by piece with STREAM FILE and all keys as escape digits, and
        the remaining digits are read with WAIT FOR DIGIT, `timeout_ms` for each digit. GET DATA
        is not used: it plays one file, and older Asterisk answered a missing prompt file there
        like an empty entry (`200 result=`), hiding it from the fallback chain, whereas STREAM
        FILE's `200 result=-1 endpos=0` is captured (agi1_suite). `terminator` ends the entry
        early and is not part of the result; '' when nothing was entered."""
        if not 1 <= max_digits <= 64:
            raise ValueError("max_digits must be 1..64")
        if terminator not in ("", "#", "*"):
            raise ValueError("terminator must be '', '#' or '*'")
        digits = await self.play(channel, name, lang, ALL_KEYS, **values)
        if digits == terminator and terminator:
            return ""
        while len(digits) < max_digits:
            digit = await channel.wait_for_digit(timeout_ms)
            if not digit or digit == terminator:
                break
            digits += digit
        return digits

    # --- internals --------------------------------------------------------------------------
    def _order(self, lang: str) -> Iterable[str]:
        yield lang
        yield from (other for other in self.catalogue.languages if other != lang)

    def _check_values(self, name: str, values: dict[str, object]) -> None:
        langs = [lang for lang in self.catalogue.languages if self.catalogue.has(name, lang)]
        if langs:
            self.catalogue.pieces(name, langs[0], values)

    def _missing(self, label: str, lang: str, reason: str, detail: str = "") -> None:
        self.metrics.missing.labels(label, lang, reason).inc()
        self.log.warn("prompt {prompt} missing in {lang} ({reason}) {detail}; falling back",
                      prompt=label, lang=lang, reason=reason, detail=detail)

    @staticmethod
    async def _stream(channel: PromptChannel, paths: list[str], escape_digits: str) -> str:
        for path in paths:
            digit = await channel.stream_file(path, escape_digits)
            if digit:
                return digit
        return ""


__all__ = ["Prompter", "PromptChannel", "PromptValueError", "ALL_KEYS"]
