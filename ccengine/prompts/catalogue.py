"""The prompt catalogue: every sentence the engine speaks, per language, split into sound pieces.

A prompt's text is split at its placeholders. Each static part becomes one sound file,
`ccengine/<name>` when the prompt has no spoken placeholder, else `ccengine/<name>-<i>` (i = 1, 2 ...
in text order, counted per language). Placeholders are spoken at run time from the number pieces
(see numbers.py); literal placeholders (`{company}`) are put into the text at load time, so the
builder renders them and the player never sees them. Parts made only of punctuation or spaces
are dropped (nothing to say).
"""
from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from collections.abc import Mapping, Sequence

from ccengine.prompts import numbers

PROMPT_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
SLOT_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SPEAKABLE_RE = re.compile(r"\w")
RESERVED_NAMES = frozenset({"num", "digit", "word"})  # directories of the number pieces
LITERAL_NAMES = ("company",)
SOUND_DIR = "ccengine"  # every file the engine plays lives under <sounds>/<lang>/ccengine/

# Names the engine's code plays. The IVR and later features import their names from here, and
# `ccengine prompts check` fails when one of them has no text in any language.
REQUIRED_PROMPTS = frozenset({
    "welcome", "menu", "language_offer", "invalid_choice", "no_input", "blocked", "closed",
    "closed_callback_offer", "transfer_to_queue", "please_hold", "technical_difficulty",
    "goodbye", "recording_notice", "position_announce", "position_only", "no_estimate", "keep_waiting_or_callback",
    "callback_confirm_number", "callback_enter_number", "callback_invalid_number",
    "callback_stored", "callback_updated", "callback_unavailable", "callback_outbound_intro",
    "agent_number", "agent_whisper", "agent_login_enter_number", "agent_login_enter_pin",
    "agent_login_ok", "agent_login_failed", "agent_login_locked",
    "agent_login_elsewhere", "agent_login_phone_in_use", "agent_not_logged_in",
    "agent_logout_ok", "agent_pause_enter_reason", "agent_pause_invalid_reason",
    "agent_pause_ok", "agent_pause_refused_staffing", "agent_unpause_ok", "complaint_ticket",
    "complaint_escalated", "complaint_supervisor_transfer", "survey_question", "survey_thanks",
    "callback_stored_no_estimate", "callback_stored_when_open", "callback_unavailable_closed",
    "complaint_followup_question", "complaint_followup_thanks",
})


class CatalogueError(Exception):
    """The catalogue is unusable; `problems` lists each problem with its location."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class PromptValueError(ValueError):
    """A value given for a placeholder is missing or cannot be spoken with its kind."""


@dataclass(frozen=True)
class Static:
    stem: str       # file name under ccengine/, e.g. "position_announce-1"
    text: str


@dataclass(frozen=True)
class Slot:
    name: str
    kind: str       # one of numbers.KINDS


Part = Static | Slot


@dataclass(frozen=True)
class Language:
    code: str
    voice: str                   # espeak-ng voice
    composer: numbers.Composer   # numbers.EnglishNumbers / ChineseNumbers
    pieces: Mapping[str, str]    # number piece stem -> text


@dataclass(frozen=True)
class Catalogue:
    languages: tuple[str, ...]                        # configured order; the first is preferred
    default_language: str
    prompts: Mapping[str, Mapping[str, tuple[Part, ...]]]   # name -> language -> parts
    specs: Mapping[str, Language]

    def names(self) -> frozenset[str]:
        return frozenset(self.prompts)

    def has(self, name: str, lang: str) -> bool:
        return lang in self.prompts.get(name, {})

    def parts(self, name: str, lang: str) -> tuple[Part, ...]:
        return self.prompts[name][lang]

    def pieces(self, name: str, lang: str, values: Mapping[str, object]) -> list[str]:
        """Stems (under ccengine/) to play for prompt `name` in `lang` with these values."""
        composer = self.specs[lang].composer
        out: list[str] = []
        for part in self.parts(name, lang):
            if isinstance(part, Static):
                out.append(part.stem)
                continue
            if part.name not in values:
                raise PromptValueError(f"prompt {name}: no value for {{{part.name}}}")
            try:
                out += numbers.compose(composer, part.kind, values[part.name])
            except numbers.NumberError as exc:
                raise PromptValueError(f"prompt {name}: {{{part.name}:{part.kind}}}: {exc}") from None
        return out

    def files(self, lang: str) -> dict[str, str]:
        """Every sound file of one language: stem -> text to render."""
        out = dict(self.specs[lang].pieces)
        for texts in self.prompts.values():
            out.update({p.stem: p.text for p in texts.get(lang, ()) if isinstance(p, Static)})
        return out


def split_text(name: str, text: str, literals: Mapping[str, str]) -> tuple[Part, ...]:
    """Split one prompt text into static parts and slots; raises ValueError on bad syntax."""
    raw: list[str | Slot] = []
    buffer = ""
    for literal, field, spec, conversion in string.Formatter().parse(text):
        buffer += literal
        if field is None:
            continue
        if conversion:
            raise ValueError(f"{{{field}!{conversion}}}: conversions are not supported")
        if field in literals and not spec:
            buffer += literals[field]
            continue
        if not SLOT_NAME_RE.fullmatch(field):
            raise ValueError(f"{{{field}}}: not a placeholder name (a-z, 0-9, _)")
        kind = spec or "number"
        if kind not in numbers.KINDS:
            raise ValueError(f"{{{field}:{kind}}}: unknown kind (one of {', '.join(numbers.KINDS)})")
        raw += [buffer, Slot(field, kind)]
        buffer = ""
    raw.append(buffer)
    kept = [p for p in raw if isinstance(p, Slot) or SPEAKABLE_RE.search(p)]
    statics = [p for p in kept if isinstance(p, str)]
    if not statics and not any(isinstance(p, Slot) for p in kept):
        raise ValueError("nothing to say")
    single = len(statics) == 1 and len(kept) == 1
    parts: list[Part] = []
    index = 0
    for p in kept:
        if isinstance(p, Slot):
            parts.append(p)
        else:
            index += 1
            parts.append(Static(name if single else f"{name}-{index}", p.strip()))
    return tuple(parts)


def default_catalogue_data() -> dict:
    text = resources.files("ccengine.prompts").joinpath("catalogue_default.toml").read_text("utf-8")
    return tomllib.loads(text)


def load_catalogue(overrides: Mapping[str, Mapping[str, str]] | None = None, *, company: str,
                   languages: Sequence[str] = ("zh", "en"), default_language: str = "zh",
                   source: str | Path | None = None) -> Catalogue:
    """The default catalogue (or the TOML file `source`) with the config's `[prompts.<name>]`
    texts merged over it, validated; raises CatalogueError listing every problem."""
    data = tomllib.loads(Path(source).read_text("utf-8")) if source else default_catalogue_data()
    problems: list[str] = []
    langs = tuple(languages)
    for lang in langs:
        if not LANGUAGE_RE.fullmatch(lang):
            problems.append(f"languages: {lang!r} is not a language code")
    if default_language not in langs:
        problems.append(f"default_language: {default_language!r} is not in languages")
    specs = {lang: spec for lang in langs
             if (spec := _language(lang, data.get("languages", {}).get(lang), problems))}
    texts: dict[str, dict[str, str]] = {}
    for where, table in (("catalogue", data.get("prompts", {})), ("config", overrides or {})):
        for name, per_lang in table.items():
            if not isinstance(per_lang, Mapping):
                problems.append(f"{where}: prompts.{name}: expected a table of texts per language")
                continue
            if where == "catalogue":  # shipped texts of languages not configured are unused
                per_lang = {lang: text for lang, text in per_lang.items() if lang in langs}
            texts.setdefault(name, {}).update(per_lang)
    literals = {"company": company}
    prompts: dict[str, dict[str, tuple[Part, ...]]] = {}
    for name, per_lang in sorted(texts.items()):
        prompts[name] = _prompt(name, per_lang, langs, literals, problems)
    if problems:
        raise CatalogueError(problems)
    return Catalogue(langs, default_language, prompts, specs)


def _language(lang: str, spec: object, problems: list[str]) -> Language | None:
    where = f"languages.{lang}"
    if not isinstance(spec, Mapping):
        problems.append(f"{where}: no voice and number words for this language in the catalogue")
        return None
    composer = numbers.COMPOSERS.get(spec.get("numbers", ""))
    voice = spec.get("voice")
    words = spec.get("words", {})
    digit_names = spec.get("digits")
    before = len(problems)
    if composer is None:
        problems.append(f"{where}.numbers: one of {', '.join(numbers.COMPOSERS)}")
    if not isinstance(voice, str) or not re.fullmatch(r"[A-Za-z0-9_+-]{1,40}", voice):
        problems.append(f"{where}.voice: an espeak-ng voice name")
    if digit_names is not None and (
            not isinstance(digit_names, list) or len(digit_names) != 10
            or not all(isinstance(d, str) and d.strip() for d in digit_names)):
        problems.append(f"{where}.digits: a list of ten texts (0 to 9)")
    if composer is not None:
        for key in composer.words:
            if not isinstance(words.get(key), str) or not words[key].strip():
                problems.append(f"{where}.words.{key}: missing")
    if len(problems) > before or composer is None or not isinstance(voice, str):
        return None
    return Language(lang, voice, composer, numbers.piece_texts(composer, words, digit_names))


def _prompt(name: str, per_lang: Mapping[str, object], langs: tuple[str, ...],
            literals: Mapping[str, str], problems: list[str]) -> dict[str, tuple[Part, ...]]:
    where = f"prompts.{name}"
    if not PROMPT_NAME_RE.fullmatch(name) or name in RESERVED_NAMES:
        problems.append(f"{where}: not a prompt name (a-z, 0-9, _; not num, digit, word)")
        return {}
    out: dict[str, tuple[Part, ...]] = {}
    for lang, text in per_lang.items():
        if lang not in langs:
            problems.append(f"{where}.{lang}: language not configured ({', '.join(langs)})")
        elif not isinstance(text, str) or not text.strip():
            problems.append(f"{where}.{lang}: expected a non-empty text")
        else:
            try:
                out[lang] = split_text(name, text, literals)
            except ValueError as exc:
                problems.append(f"{where}.{lang}: {exc}")
    slots = {lang: {p.name: p.kind for p in parts if isinstance(p, Slot)} for lang, parts in out.items()}
    if len({tuple(sorted(s.items())) for s in slots.values()}) > 1:
        problems.append(f"{where}: every language must have the same placeholders and kinds "
                        f"({'; '.join(f'{k}: {sorted(v)}' for k, v in slots.items())})")
    return out
