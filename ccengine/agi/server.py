"""FastAGI server: route each session by `agi_network_script`, guard it with a watchdog.

Every way a session ends closes the connection, so Asterisk continues the dialplan, whose
fallback trusts only the positive acknowledgement the route sets (e.g. CC_ROUTE_OK=1).
"""
from __future__ import annotations

from typing import Any
from typing import Protocol as TypingProtocol
from collections.abc import Mapping

from twisted.application.internet import TCPServer
from twisted.internet.defer import CancelledError, Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from ccengine.agi.channel import AgiChannel, CallerHungUp, EngineStopping
from ccengine.agi.metrics import AgiMetrics
from ccengine.agi.protocol import AgiConnectionLost, AgiTimeout, FastAGIProtocol
from ccengine.agi.settings import AgiSettings
from ccengine.runtime.timers import NO_DEADLINE, Deadline
from ccengine.agi.wire import (
    AgiEnvironment, AgiInvalidCommand, AgiProtocolError, AgiUsageError,
)

__all__ = ["AgiSettings", "Route", "FastAGIFactory"]

log = Logger()

# Clock arithmetic (idle_since + max_silence - now) may land an ulp off zero.
_SLACK = 1e-9


class Route(TypingProtocol):
    async def handle(self, channel: AgiChannel) -> None: ...

    async def on_watchdog(self, channel: AgiChannel) -> None: ...


# Error kinds counted when a handler fails; None = already counted by the protocol when it
# aborted the connection (timeout, protocol).
_ERROR_KINDS: tuple[tuple[type[BaseException], str | None], ...] = (
    (AgiTimeout, None),
    (AgiProtocolError, None),
    (AgiConnectionLost, "connection_lost"),
    (AgiInvalidCommand, "invalid_command"),
    (AgiUsageError, "usage"),
)


class _Session:
    """One routed call: the handler, its watchdog and session cap."""

    def __init__(self, factory: FastAGIFactory, protocol: FastAGIProtocol,
                 channel: AgiChannel, route: Route, script: str) -> None:
        self.factory = factory
        self.protocol = protocol
        self.channel = channel
        self.route = route
        self.script = script
        # running -> watchdog | max_session | hangup | lost -> finished
        self.state = "running"
        self._handler: Deferred | None = None
        self._rescue: Deferred | None = None
        # One timer for the watchdog and the session cap, checked lazily: nothing happens per
        # command. When it comes due it reads the protocol's state and re-arms for the rest
        # (_timer_due).
        self._timer: Deadline = Deadline(factory.clock, self._timer_due)
        self._outcome = "watchdog"      # or "stopping": how a diverted session is counted
        self._cap_at = 0.0

    def start(self) -> None:
        clock = self.factory.clock
        settings = self.factory.settings
        self._cap_at = clock.seconds() + settings.max_session
        self._timer.set(min(settings.max_silence, settings.max_session))
        try:
            self._handler = Deferred.fromCoroutine(self.route.handle(self.channel))
        except Exception:
            self._handler_failed(Failure())
            return
        self._handler.addCallbacks(self._handler_done, self._handler_failed)

    # --- handler outcome ------------------------------------------------------------------
    def _handler_done(self, _: object) -> None:
        if self.state == "running":
            self.finish("ok")

    def _handler_failed(self, failure: Failure) -> None:
        if self.state != "running":
            # Cancelled by the watchdog, the session cap or a lost connection, which report
            # the outcome; anything but the CancelledError itself is still worth a log line.
            if not failure.check(CancelledError):
                log.failure("AGI route {script!r} failed after it was cancelled", failure,
                            level=LogLevel.warn, script=self.script)
            return
        if failure.check(CallerHungUp):
            self.finish("hangup")
            return
        if failure.check(EngineStopping):
            self.channel.stopping = False   # the default route's own commands must pass
            self._divert("stopping")
            return
        if failure.check(AgiConnectionLost) and self.protocol.hung_up:
            self.finish("hangup")
            return
        kind = next((k for t, k in _ERROR_KINDS if failure.check(t)), "handler")
        if kind is not None:
            self.factory.metrics.errors_total.labels(kind).inc()
        log.failure("AGI route {script!r} failed on {channel}", failure, level=LogLevel.error,
                    script=self.script, channel=self.channel.env.channel)
        self.finish("lost" if kind == "connection_lost" else "error")

    # --- watchdog -------------------------------------------------------------------------
    def _timer_due(self) -> None:
        """The session cap, else the watchdog: it fires max_silence after the line last
        became idle (no command in flight), the same moment as re-arming it on every command,
        without the per-command cost. While a command is in flight the silence has not begun."""
        if self.state != "running":
            return
        now = self.factory.clock.seconds()
        to_cap = self._cap_at - now
        if to_cap <= _SLACK:
            self._max_session()
            return
        max_silence = self.factory.settings.max_silence
        if self.protocol.busy:
            silence = max_silence
        else:
            silence = self.protocol.idle_since + max_silence - now
            if silence <= _SLACK:
                self._watchdog_fired()
                return
        self._timer.set(min(silence, to_cap))

    def _watchdog_fired(self) -> None:
        # No command in flight for max_silence (a Redis stall, a bug): the caller hears
        # silence. Stop the handler and let the route set its default quickly.
        if self.state != "running":
            return
        self.factory.metrics.watchdog_fired_total.labels(self.script).inc()
        log.warn("AGI watchdog fired for route {script!r} on {channel}",
                 script=self.script, channel=self.channel.env.channel)
        self._divert("watchdog")

    def stop(self) -> None:
        """The engine is stopping: a session not yet acknowledged and idle gets its default
        route now; one in a media command gets it when that command returns (EngineStopping
        at the next media command); an acknowledged one finishes as it is."""
        if self.state != "running" or self.channel.acknowledged:
            return
        self.channel.stopping = True
        if not self.protocol.busy:
            self._divert("stopping")

    def _divert(self, outcome: str) -> None:
        """Cancel the handler and let the route set its default route (the watchdog and the
        graceful stop); `outcome` is the session's outcome in the metrics."""
        self.state = "watchdog"
        self._outcome = outcome
        self.channel.stopping = False
        self._cancel_handler()
        if self.protocol.busy or self.protocol.closing or self.channel.acknowledged:
            # The cancelled handler left a command in flight (or the line is gone): no
            # command can be paired any more; the dialplan fallback takes over. Or the route
            # already acknowledged its decision (CC_ROUTE_OK=1): closing keeps that decision,
            # on_watchdog would overwrite it with the default.
            self.finish(outcome)
            return
        try:
            rescue = Deferred.fromCoroutine(self.route.on_watchdog(self.channel))
        except Exception:
            self._watchdog_done(Failure())
            return
        self._rescue = rescue
        rescue.addTimeout(self.factory.settings.watchdog_grace, self.factory.clock)
        rescue.addBoth(self._watchdog_done)

    def _watchdog_done(self, result: object) -> None:
        if self.state == "finished":
            return  # the connection was lost meanwhile; finish() cancelled the rescue
        if isinstance(result, Failure) and not result.check(CallerHungUp):
            self.factory.metrics.errors_total.labels("watchdog_handler").inc()
            log.failure("AGI on_watchdog of route {script!r} failed", result,
                        level=LogLevel.error, script=self.script)
        self.finish(self._outcome)

    def _max_session(self) -> None:
        log.warn("AGI session of route {script!r} hit max_session", script=self.script)
        self.state = "max_session"  # before cancelling: cancelling may close the connection
        self._cancel_handler()
        self.finish("max_session")

    # --- end ------------------------------------------------------------------------------
    def connection_lost(self) -> None:
        if self.state == "watchdog":
            self.finish(self._outcome)
        elif self.state == "running":
            outcome = "hangup" if self.protocol.hung_up else "lost"
            self.state = outcome  # before cancelling, so the cancelled handler is not an error
            self._cancel_handler()
            self.finish(outcome)

    def _cancel_handler(self) -> None:
        # Its CancelledError reaches _handler_failed, which ignores it once state != "running".
        if self._handler is not None and not self._handler.called:
            self._handler.cancel()

    def finish(self, outcome: str) -> None:
        if self.state == "finished":
            return
        self.state = "finished"
        if self._rescue is not None and not self._rescue.called:
            self._rescue.cancel()
        self._timer.stop()
        # The timer and the handler's Deferred hold our bound methods and we hold them:
        # reference cycles, broken so the call is freed at once (FastAGIProtocol.connectionLost).
        self._handler = self._rescue = None
        self._timer = NO_DEADLINE
        self.factory.session_finished(self, outcome)
        self.protocol.close()


class FastAGIFactory(ServerFactory):
    protocol = FastAGIProtocol  # type: ignore[assignment]  # Twisted types it as a callable

    def __init__(self, routes: Mapping[str, Route], clock: IReactorTime, settings: AgiSettings,
                 metrics: AgiMetrics) -> None:
        self.routes = dict(routes)
        self.clock = clock
        self.settings = settings
        self.env_timeout = settings.env_timeout
        self.metrics = metrics
        self._sessions: dict[FastAGIProtocol, _Session] = {}
        self._drained: list[Deferred] = []
        self._connections = 0
        self._by_source: dict[str, int] = {}
        metrics.track_active(lambda: len(self._sessions))

    def stop_sessions(self, grace: float) -> Deferred:
        """The graceful stop (SIGTERM): every session not yet acknowledged is given its route's
        default (at once when idle, after its current prompt otherwise); fires once every
        session ended, or after `grace` seconds, when the rest are closed (the dialplan's
        fallback queues them)."""
        for session in list(self._sessions.values()):
            session.stop()
        done: Deferred = Deferred()
        if not self._sessions:
            done.callback(0)
            return done
        self._drained.append(done)

        def give_up() -> None:
            if done.called:
                return
            left = list(self._sessions.values())
            log.warn("stop: {n} AGI session(s) still in a prompt after {g}s: closed, the "
                     "dialplan fallback queues them", n=len(left), g=grace)
            for session in left:
                session.finish("stopping")
        timer = self.clock.callLater(grace, give_up)

        def stop_timer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result
        done.addBoth(stop_timer)
        return done

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    # --- SessionHost (called by FastAGIProtocol) ------------------------------------------
    def connection_opened(self, protocol: FastAGIProtocol) -> bool:
        """False when the connection would pass fastagi.max_connections or, for its source
        address, fastagi.max_connections_per_source: it is closed at once (Asterisk's AGI()
        then fails and the dialplan fallback queues the caller) and counted."""
        get_peer = getattr(protocol.transport, "getPeer", None)
        source = getattr(get_peer(), "host", "?") if get_peer is not None else "?"
        if self._connections >= self.settings.max_connections:
            self.metrics.errors_total.labels("too_many_connections").inc()
            return False
        if self._by_source.get(source, 0) >= self.settings.max_connections_per_source:
            self.metrics.errors_total.labels("too_many_from_source").inc()
            return False
        self._connections += 1
        self._by_source[source] = self._by_source.get(source, 0) + 1
        protocol.counted_source = source
        return True

    def connection_closed(self, protocol: FastAGIProtocol) -> None:
        source = getattr(protocol, "counted_source", None)
        if source is None:
            return
        protocol.counted_source = None
        self._connections -= 1
        left = self._by_source.get(source, 1) - 1
        if left:
            self._by_source[source] = left
        else:
            self._by_source.pop(source, None)

    def session_started(self, protocol: FastAGIProtocol, env: AgiEnvironment) -> None:
        if env.anomalies:
            # Text smuggled into the environment (a newline in the caller ID name): nothing in
            # it can be trusted, not even the script name. The dialplan fallback queues the call.
            log.warn("AGI environment refused: {anomalies}", anomalies=", ".join(env.anomalies[:5]))
            self.metrics.sessions_total.labels("unknown", "bad_environment").inc()
            protocol.close()
            return
        script = env.network_script
        route = self.routes.get(script)
        if route is None:
            # Not ours to guess: close, and the dialplan continues with its fallback.
            log.warn("AGI request for unknown script {script!r}", script=script[:80])
            self.metrics.sessions_total.labels("unknown", "unknown_script").inc()
            protocol.close()
            return
        channel = AgiChannel(protocol, env, self.settings.command_timeout,
                             self.settings.media_timeout, self.clock)
        session = _Session(self, protocol, channel, route, script)
        self._sessions[protocol] = session
        session.start()

    def session_ended(self, protocol: FastAGIProtocol) -> None:
        session = self._sessions.get(protocol)
        if session is not None:
            session.connection_lost()

    def connection_aborted(self, protocol: FastAGIProtocol, kind: str) -> None:
        self.metrics.errors_total.labels(kind).inc()

    def session_finished(self, session: _Session, outcome: str) -> None:
        self._sessions.pop(session.protocol, None)
        self.metrics.sessions_total.labels(session.script, outcome).inc()
        if not self._sessions and self._drained:
            waiting, self._drained = self._drained, []
            for done in waiting:
                done.callback(0)


class FastAGIServer(TCPServer):
    """The FastAGI listener: at a stop it closes the port (new calls take the dialplan fallback
    at once) and gives every caller still in the IVR their route's default within
    fastagi.stop_grace (FastAGIFactory.stop_sessions); the stop waits for both."""

    def stopService(self) -> Deferred:
        closing = maybeDeferred(super().stopService)
        factory = self.args[1]
        draining = factory.stop_sessions(factory.settings.stop_grace)
        return DeferredList([closing, draining], consumeErrors=True)
