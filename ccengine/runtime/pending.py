"""Writes nobody waits for, kept until Redis answers: shutdown waits for them.

The hotline writes a call's record after the caller is routed. The caller must not wait for
it: the dialplan goes on to Queue() only when the FastAGI session ends, so a record awaited on
the call's path held every caller for one more Redis round trip, and for up to
`redis.timeout` in silence when Redis stalled. The route hands the write to `PendingWrites`
and ends; the write finishes on its own (each one is bounded by the store's timeout, and the
route logs the record if it fails). On shutdown (`stopService`) the engine waits until every
write has finished, so a record whose call was routed is not lost to a restart. A write still
running after `drain_timeout` is cancelled: the route's error handler logs its record.
"""
from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

__all__ = ["PendingWrites"]

log = Logger()


class PendingWrites(Service):
    name = "pending-writes"  # type: ignore[assignment]  # Twisted types Service.name as None

    def __init__(self, clock: IReactorTime, drain_timeout: float = 10.0) -> None:
        self.clock = clock
        self.drain_timeout = drain_timeout
        self._pending: set[Deferred] = set()
        self._waiters: list[Deferred] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, write: Deferred) -> None:
        """Track `write` until it fires. Its failures are the caller's to handle (add an
        errback first); what reaches here is passed on unchanged."""
        self._pending.add(write)
        write.addBoth(self._finished, write)

    def _finished(self, result: object, write: Deferred) -> object:
        self._pending.discard(write)
        if not self._pending and self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)
        return result

    def wait(self) -> Deferred:
        """Fires once nothing is pending (at once if nothing is)."""
        if not self._pending:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._waiters.append(waiter)
        return waiter

    def stopService(self) -> Deferred | None:
        super().stopService()
        if not self._pending:
            return None
        log.info("waiting for {count} Redis writes before stopping", count=len(self._pending))
        drained = self.wait()
        timer = self.clock.callLater(self.drain_timeout, self._give_up)

        def drained_in_time(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result
        return drained.addBoth(drained_in_time)

    def _give_up(self) -> None:
        log.error("{count} Redis writes still pending after {timeout} s at shutdown: "
                  "cancelled", count=len(self._pending), timeout=self.drain_timeout)
        for write in list(self._pending):
            write.cancel()
