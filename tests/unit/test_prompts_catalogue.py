"""Catalogue parsing: segmenting texts at placeholders, literals, validation of the default file."""
from __future__ import annotations

import pytest

from ccengine.prompts.catalogue import (
    REQUIRED_PROMPTS, CatalogueError, PromptValueError, Slot, Static, load_catalogue, split_text,
)


def test_split_at_placeholders_numbers_static_parts():
    """Static parts between placeholders become files <name>-1, <name>-2 in text order."""
    parts = split_text("pos", "You are number {position} in line. Wait about {w:minutes}.", {})
    assert parts == (Static("pos-1", "You are number"), Slot("position", "number"),
                     Static("pos-2", "in line. Wait about"), Slot("w", "minutes"))


def test_prompt_without_placeholder_is_one_file_named_like_the_prompt():
    """A prompt without spoken placeholders is one file named after the prompt, literals included."""
    assert split_text("welcome", "Welcome to {company}.", {"company": "ACME"}) == (
        Static("welcome", "Welcome to ACME."),)


def test_punctuation_only_parts_are_dropped():
    """A part with nothing to say (punctuation, spaces) gets no file."""
    parts = split_text("agent", "{agent:digits}号。", {})
    assert parts == (Slot("agent", "digits"), Static("agent-1", "号。"))
    assert split_text("x", "工号{agent:digits}。", {}) == (Static("x-1", "工号"), Slot("agent", "digits"))


@pytest.mark.parametrize("text", ["{n:loudly}", "{n!r}", "{Bad}", "{", "。"])
def test_bad_placeholders_are_refused(text):
    """Unknown kinds, conversions, bad names, broken braces and empty texts are errors."""
    with pytest.raises(ValueError):
        split_text("p", text, {})


def test_default_catalogue_has_every_required_prompt_in_both_languages():
    """The shipped catalogue loads and has every prompt the engine plays in zh and en."""
    catalogue = load_catalogue(company="ACME")
    for name in REQUIRED_PROMPTS:
        assert catalogue.has(name, "zh") and catalogue.has(name, "en"), name


def test_config_overrides_and_adds_prompts():
    """Texts from the config's [prompts.<name>] replace the default and may add new prompts."""
    catalogue = load_catalogue({"welcome": {"en": "Hi from {company}!"},
                                "promo": {"en": "Ask about {offer:count} offers."}},
                               company="ACME")
    assert catalogue.parts("welcome", "en") == (Static("welcome", "Hi from ACME!"),)
    assert catalogue.has("welcome", "zh")
    assert catalogue.has("promo", "en") and not catalogue.has("promo", "zh")


def test_catalogue_errors_list_every_problem():
    """A broken override yields one located problem per mistake."""
    with pytest.raises(CatalogueError) as caught:
        load_catalogue({"welcome": {"fr": "Bonjour"},
                        "position_only": {"en": "Number {n:digits}."},
                        "num": {"en": "x"}}, company="ACME")
    problems = "\n".join(caught.value.problems)
    assert "prompts.welcome.fr: language not configured" in problems
    assert "prompts.position_only: every language must have the same placeholders" in problems
    assert "prompts.num: not a prompt name" in problems


def test_language_without_voice_is_an_error():
    """A configured language the catalogue has no voice and number words for is refused."""
    with pytest.raises(CatalogueError, match="languages.fr"):
        load_catalogue(company="ACME", languages=("zh", "en", "fr"))


def test_pieces_need_every_value():
    """Playing a prompt without a value for one of its placeholders is a PromptValueError."""
    catalogue = load_catalogue(company="ACME")
    with pytest.raises(PromptValueError):
        catalogue.pieces("position_announce", "en", {"position": 3})
    with pytest.raises(PromptValueError):
        catalogue.pieces("callback_confirm_number", "en", {"number": "12;34"})
