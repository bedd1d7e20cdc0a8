"""Prompt metrics. Labels are bounded: prompt names come from the catalogue, languages from the
config, reasons from the fixed list below."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

MISSING_REASONS = ("no_text", "playback_failed", "unknown_prompt")


class PromptMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.missing = Counter(
            "ccengine_prompt_missing_total",
            "Prompts that could not be played in a language (the player fell back).",
            ["prompt", "language", "reason"], registry=registry)
        self.stock_fallback = Counter(
            "ccengine_prompt_stock_fallback_total",
            "Prompts replaced by the stock Asterisk sound because no language could play them.",
            ["prompt"], registry=registry)
        self.bad_language = Counter(
            "ccengine_prompt_bad_language_total",
            "Requests for a language that is not configured (the default language was used).",
            registry=registry)
