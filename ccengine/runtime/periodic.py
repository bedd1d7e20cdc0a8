"""A service that runs one async round every `interval` seconds on an injected clock.

Rounds never overlap (LoopingCall waits for the round's Deferred). A round that fails is
logged and the loop goes on, so one Redis outage does not stop a sweeper for good: a
StoreUnavailable is a warning (expected while Redis is down), anything else an error with its
traceback. Subclasses implement `round()`; `last_run` is the Deferred of the latest round.
"""
from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ccengine.store.base import StoreUnavailable

log = Logger()


class PeriodicService(Service):
    run_at_start = False          # True: the first round runs when the service starts

    def __init__(self, clock: Any, interval: float):
        self.clock = clock
        self.interval = interval
        self._loop: LoopingCall | None = None
        self.last_run: Deferred | None = None

    async def round(self) -> Any:
        raise NotImplementedError

    def run_once(self) -> Deferred:
        d = Deferred.fromCoroutine(self.round())
        d.addErrback(self._failed)
        self.last_run = d
        return d

    def _failed(self, failure: Failure) -> None:
        name = self.name or type(self).__name__
        if failure.check(StoreUnavailable):
            log.warn("{name}: round skipped: {exc}", name=name, exc=failure.value)
        else:
            log.failure("{name}: round failed", failure, name=name)

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.run_once)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=self.run_at_start)

    def stopService(self) -> Deferred | None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return None
