"""The order in which the agents' event handlers and resyncs run (agents/tracker.py).

Each handler awaits Redis; two handlers of one member interleaving would store an older state
last, so one member's events run one after another. Events of different members overlap: one
chain of Redis round trips for every member's events could not follow 600 member events a
second (bench/centre.py). A resync (or FullyBooted) is exclusive.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.python.failure import Failure


class Serial:
    """Runs the agents' event handlers and resyncs in arrival order, one member at a time:
    each awaits Redis, and two handlers of the same member interleaving would store an older
    state last. `run` is exclusive (a resync, a FullyBooted): it starts once everything
    queued before it is done, and everything queued after it waits for it. `run_for(key, ...)`
    (one member's event) waits for the member's previous event and for the last exclusive
    one only, so events of different members overlap: one chain of Redis round trips for
    every member's events could not follow 600 member events a second (the centre bench)."""

    # Member events running at once, at most: unbounded, a backlog of thousands took every
    # connection of redis-py's pool at once and other Redis work (a login's PIN check) timed out.
    CONCURRENCY = 32

    def __init__(self, concurrency: int = CONCURRENCY) -> None:
        self._slots = DeferredSemaphore(concurrency)
        self._exclusive: Deferred | None = None        # the last exclusive task queued
        self._by_key: dict[Any, Deferred] = {}         # each member's last event queued
        self._since: dict[Deferred, None] = {}        # member events since that exclusive

    def run(self, func: Any, *args: Any) -> Deferred:
        before = [d for d in (self._exclusive, *self._since) if d is not None]
        done = self._after(before, func, args)
        self._exclusive, self._by_key, self._since = done, {}, {}
        return _observed(done)

    def run_for(self, key: Any, func: Any, *args: Any) -> Deferred:
        before = [d for d in (self._exclusive, self._by_key.get(key)) if d is not None]
        done = self._after(before, func, args, self._slots)
        self._by_key[key] = done
        self._since[done] = None
        done.addBoth(self._finished, key, done)
        return _observed(done)

    def _finished(self, result: Any, key: Any, done: Deferred) -> Any:
        if self._by_key.get(key) is done:
            del self._by_key[key]
        self._since.pop(done, None)
        return result

    @staticmethod
    def _after(before: list[Deferred], func: Any, args: tuple,
               slots: DeferredSemaphore | None = None) -> Deferred:
        """A Deferred that fires with func(*args)'s result once every one of `before` has
        fired (whatever their results: a failed task does not stop the next), holding one of
        `slots` while it runs."""
        async def task() -> Any:
            for d in before:
                await _settled(d)
            if slots is None:
                return await func(*args)
            await slots.acquire()
            try:
                return await func(*args)
            finally:
                slots.release()
        return Deferred.fromCoroutine(task())

    def drained(self) -> Deferred:
        """Fires once nothing is queued any more, including work queued by queued work."""
        async def drain() -> None:
            while self._exclusive is not None or self._since:
                pending = [d for d in (self._exclusive, *self._since) if d is not None]
                for d in pending:
                    await _settled(d)
                if self._exclusive is not None and self._exclusive.called and not self._since:
                    self._exclusive = None
        return Deferred.fromCoroutine(drain())


def _settled(d: Deferred) -> Deferred:
    """Fires (with None) when `d` has fired, without taking or changing its result."""
    out: Deferred = Deferred()

    def fire(result: Any) -> Any:
        if not out.called:
            out.callback(None)
        return result
    d.addBoth(fire)
    return out


def _observed(d: Deferred) -> Deferred:
    """What callers of run/run_for get: `d`'s result, on a Deferred of its own."""
    out: Deferred = Deferred()

    def fire(result: Any) -> Any:
        out.callback(result) if not isinstance(result, Failure) else out.errback(result)
        return None
    d.addBoth(fire)
    return out
