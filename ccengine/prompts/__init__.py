"""Prompts and languages: the catalogue of sentences, how numbers are spoken, the player with its
fallback chain, the builder that renders sound files, and the reference check (docs/prompts.md)."""
from ccengine.prompts.catalogue import (
    REQUIRED_PROMPTS, Catalogue, CatalogueError, PromptValueError, load_catalogue,
)
from ccengine.prompts.metrics import PromptMetrics

__all__ = ["REQUIRED_PROMPTS", "Catalogue", "CatalogueError", "PromptValueError",
           "PromptMetrics", "load_catalogue"]
