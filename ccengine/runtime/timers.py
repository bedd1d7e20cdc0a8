"""A deadline that moves often (every AGI command, every Redis reply) but rarely touches the
reactor's timer heap.

The command timeout and the watchdog move their deadline on every command (a dozen times per
call within milliseconds). Cancelling and re-creating a DelayedCall each time was a visible share
of the server's CPU in the hotline profile (bench/README.md). Here the DelayedCall stays
armed: a deadline moved later only records the new time, and a call that comes due before the
current deadline re-arms itself for the rest. Only a deadline moved earlier than the armed call
(a 10 s command after a 120 s prompt) replaces the call. The callback still runs at the
deadline itself, as with one callLater per deadline.
"""
from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["Deadline", "NO_DEADLINE"]

# Clock arithmetic (now + delay) may land an ulp off the recorded deadline.
_SLACK = 1e-9


class Deadline:
    """Calls `expired()` once the deadline set with `set` passes, unless `clear`ed first."""

    __slots__ = ("_clock", "_expired", "_deadline", "_call", "_call_at")

    def __init__(self, clock: IReactorTime, expired: Callable[[], None]) -> None:
        self._clock = clock
        self._expired = expired
        self._deadline: float | None = None
        self._call: IDelayedCall | None = None
        self._call_at = 0.0

    @property
    def armed(self) -> bool:
        return self._deadline is not None

    def set(self, delay: float) -> None:
        """Expire `delay` seconds from now (replacing any earlier setting)."""
        now = self._clock.seconds()
        when = now + delay
        self._deadline = when
        if self._call is not None:
            if self._call_at <= when + _SLACK:
                return  # the armed call comes first and re-arms itself for the rest
            self._call.cancel()
        self._call_at = when
        self._call = self._clock.callLater(delay, self._fire)

    def clear(self) -> None:
        """Forget the deadline; a call still armed fires later and does nothing."""
        self._deadline = None

    def stop(self) -> None:
        """Forget the deadline and cancel the armed call (nothing is left on the clock)."""
        self._deadline = None
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _fire(self) -> None:
        self._call = None
        deadline = self._deadline
        if deadline is None:
            return
        if deadline > self._call_at + _SLACK:
            # Moved later since this call was armed: wait for the rest.
            self._call_at = deadline
            self._call = self._clock.callLater(max(0.0, deadline - self._clock.seconds()),
                                               self._fire)
            return
        self._deadline = None
        self._expired()


class _NoDeadline(Deadline):
    """Stands for a deadline not made yet or dropped with its connection: every call does
    nothing. Holding no callback, it keeps no reference to a closed connection's objects."""

    __slots__ = ()

    def __init__(self) -> None:
        pass

    @property
    def armed(self) -> bool:
        return False

    def set(self, delay: float) -> None:
        pass

    def clear(self) -> None:
        pass

    def stop(self) -> None:
        pass


NO_DEADLINE: Deadline = _NoDeadline()
