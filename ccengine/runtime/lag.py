"""How late the reactor runs its timers: `ccengine_reactor_lag_seconds`.

A timer asks to be called `interval` seconds from now; the time it is called beyond that is
the lag every caller's AGI command would have waited at that moment (a blocking call on the
reactor, a long burst of AMI events, the garbage collector). The histogram makes a stall
visible in production; bench/centre.py-style benches read the same number.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram
from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime

BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ReactorLagProbe(Service):
    name = "reactor-lag"  # type: ignore[assignment]  # Twisted types Service.name as None

    def __init__(self, clock: IReactorTime, registry: CollectorRegistry, interval: float = 0.25):
        self.clock = clock
        self.interval = interval
        self.lag = Histogram("ccengine_reactor_lag_seconds",
                             "How late a timer of the reactor fired (a stall of the event loop)",
                             buckets=BUCKETS, registry=registry)
        self._call: IDelayedCall | None = None
        self._due = 0.0

    def startService(self) -> None:
        super().startService()
        self._arm()

    def stopService(self) -> None:
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _arm(self) -> None:
        self._due = self.clock.seconds() + self.interval
        self._call = self.clock.callLater(self.interval, self._fired)

    def _fired(self) -> None:
        self.lag.observe(max(0.0, self.clock.seconds() - self._due))
        if self.running:
            self._arm()
