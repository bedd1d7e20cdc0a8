"""Synchronous results of Deferreds in pytest tests (trial's successResultOf/failureResultOf)."""
from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure


def result_of(deferred: Deferred):
    """The value a fired Deferred holds; raises its failure, or fails if it has not fired."""
    results = []
    deferred.addBoth(results.append)
    assert results, "Deferred has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def failure_of(deferred: Deferred) -> Failure:
    """The Failure a fired Deferred holds; fails if it has not fired or succeeded."""
    results = []
    deferred.addBoth(results.append)
    assert results and isinstance(results[0], Failure), f"expected a failure, got {results}"
    return results[0]
