"""Labelled metric children looked up once: `Counter.labels(...)` validates and hashes its
arguments under a lock on every call (about 3 us), which the hotline paid three times per call
(bench/README.md, "profile"). Only for families whose labels are bounded by the code or the
configuration: every child found is kept."""
from __future__ import annotations

from typing import Any


class Children:
    def __init__(self, family: Any):
        self.family = family
        self._children: dict[tuple, Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.family.labels(*values)
        return child
