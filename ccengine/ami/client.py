"""AMI facade for domain code: one logged-in connection, kept up with backoff.

`AmiClient` is a Service around Twisted's ClientService: Login runs in `prepareConnection`,
a Ping keepalive drops a silent connection, events go to subscribers by name. Actions are
never queued or re-sent: while disconnected they fail with AmiNotConnected, and an action
pending when the connection drops fails with AmiConnectionLost (the caller decides, e.g. an
Originate must not be repeated blindly). After every login the `on_connected` callbacks run
so that domain code can resync its state from Asterisk.
"""
from __future__ import annotations

import inspect
import itertools
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from dataclasses import dataclass

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ccengine.ami.metrics import AmiMetrics
from ccengine.ami.protocol import (AmiActionError, AmiConnectionLost, AmiError, AmiProtocol,
                                   AmiTimeout)
from ccengine.ami.wire import Action, FieldValue, Message

log = Logger()

EventCallback = Callable[[Message], object]

# The Login's `Events:` mask: the classes of every event the engine subscribes to (agent:
# Queue*/Agent*; call: Hangup, OriginateResponse, AttendedTransfer; dialplan: VarSet; system:
# FullyBooted, Shutdown). Asterisk sends a session only the events whose classes are all in
# `readperm & this mask` (main/manager.c set_eventmask, process_events), so manager.conf's
# `read=` still decides (the shipped user has no `system`), but a user granted more (read=all,
# as the lab observer of transcripts3 load_2cps_ami) no longer floods the engine with the agi,
# reporting, dtmf, security, cdr ... classes it never reads (22 % of that capture). `Events: on`
# would take every class the user may read.
LOGIN_EVENTS = "agent,call,dialplan,system"


@dataclass(frozen=True)
class AmiSettings:
    name: str = "asterisk"          # the server's name (config ami.name / ami.servers)
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ccengine"
    action_timeout: float = 10.0
    ping_interval: float = 20.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


class AmiNotConnected(AmiError):
    """No logged-in AMI connection right now; the action was not sent."""


class AmiLoginFailed(AmiError):
    """Asterisk refused the Login (wrong user or secret, or a `deny` in manager.conf)."""


def tcp_endpoint(reactor, settings: AmiSettings) -> IStreamClientEndpoint:
    """The endpoint app.py passes to AmiClient (the reactor is only known there)."""
    return NamedEndpoint(TCP4ClientEndpoint(reactor, settings.host, settings.port,
                                            timeout=settings.action_timeout),
                         f"{settings.host}:{settings.port}")


@implementer(IStreamClientEndpoint)
class NamedEndpoint:
    """An endpoint that says which AMI server it is: Twisted's ClientService logs its retries
    with the endpoint's repr ("Scheduling retry 2 to connect AMI server 127.0.0.1:5038 in 1.0
    seconds"), and a failed connection is logged here with its reason."""

    def __init__(self, endpoint: IStreamClientEndpoint, server: str):
        self.endpoint = endpoint
        self.server = server

    def __repr__(self) -> str:
        return f"AMI server {self.server}"

    def connect(self, factory: Any) -> Deferred:
        def failed(failure: Any) -> Any:
            log.warn("AMI {server}: cannot connect: {why}", server=self.server,
                     why=failure.getErrorMessage() or failure.type.__name__)
            return failure
        return self.endpoint.connect(factory).addErrback(failed)


class AmiClient(Service):
    def __init__(self, settings: AmiSettings, secret: str, *, clock: IReactorTime,
                 endpoint: IStreamClientEndpoint, metrics: AmiMetrics,
                 jitter: Callable[[], float] | None = None):
        self.settings = settings
        # The server's name in the configuration (metrics label, lease, Message.server; and
        # this Service's name in AmiServers).
        self.name = settings.name  # type: ignore[assignment]  # Twisted types it as None
        self._secret = secret
        self._clock = clock
        self._metrics = metrics
        self._subscribers: dict[str, list[EventCallback]] = {}
        # The Variables each VarSet subscription reads (None: every one), by subscription.
        self._varset_reads: dict[int, frozenset[str] | None] = {}
        self._varset_wanted: frozenset[str] | None = frozenset()
        self._subscription_ids = itertools.count(1)
        self._on_connected: list[Callable[[], object]] = []
        self._protocol: AmiProtocol | None = None
        self._keepalive: LoopingCall | None = None
        self._logins = 0
        self._connection_numbers = itertools.count(1)
        if jitter is None:
            # Twisted's default jitter adds up to 1 s, more than the first delay itself.
            jitter = lambda: random.uniform(0, settings.backoff_initial)  # noqa: E731
        backoff = backoffPolicy(settings.backoff_initial, settings.backoff_max, factor=2.0,
                                jitter=jitter)
        factory = Factory.forProtocol(self._build_protocol)
        factory.noisy = False
        # ClientService counts attempts from 1; the first retry waits backoff_initial.
        self._service = ClientService(endpoint, factory,
                                      retryPolicy=lambda attempt: backoff(attempt - 1),
                                      clock=clock,
                                      prepareConnection=self._login)

    # -- what domain code calls ------------------------------------------------------------
    @property
    def server(self) -> str:
        """host:port of the Asterisk this client follows, for log lines."""
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    def subscribe(self, event_name: str, callback: EventCallback, *,
                  variables: Iterable[str] | None = None) -> Callable[[], None]:
        """Call `callback(message)` for every event named `event_name` ("*" = every event).
        `variables` (VarSet only): the Variables the callback reads; a VarSet of another
        variable may then reach no subscriber (it is dropped unparsed when no other
        subscription reads it). Returns a function that removes the subscription."""
        name = event_name.lower()
        callbacks = self._subscribers.setdefault(name, [])
        callbacks.append(callback)
        number = next(self._subscription_ids)
        if name == "varset":
            self._varset_reads[number] = None if variables is None else frozenset(variables)
            self._varset_changed()
        elif variables is not None:
            raise ValueError("variables= is for VarSet subscriptions only")

        def remove() -> None:
            if callback in callbacks:
                callbacks.remove(callback)
            if self._varset_reads.pop(number, 0) != 0:
                self._varset_changed()
        return remove

    def _varset_changed(self) -> None:
        reads = list(self._varset_reads.values())
        wanted: frozenset[str] | None = frozenset()
        for variables in reads:
            wanted = None if variables is None or wanted is None else wanted | variables
        self._varset_wanted = wanted

    def on_connected(self, callback: Callable[[], object]) -> None:
        """Call `callback()` after every successful login (first connection and reconnects)."""
        self._on_connected.append(callback)

    def on_server(self, server: str) -> AmiClient:
        """The client of Asterisk server `server`: this one (ami/servers.py routes several)."""
        return self

    def server_of_interface(self, interface: str) -> str:
        """The server a member interface (an agent phone) is on: this one."""
        return self.settings.name

    def send_action(self, name: str, fields: _FieldsArg = None, /, *,
                    action_timeout: float | None = None,
                    **kwfields: FieldValue) -> Deferred[Message]:
        """Send one action; fires with its Success response or fails with AmiActionError,
        AmiTimeout, AmiConnectionLost, AmiNotConnected or UnsafeAmiValue."""
        return self._send(name, fields, kwfields, action_timeout, is_list=False)

    def send_list_action(self, name: str, fields: _FieldsArg = None, /, *,
                         action_timeout: float | None = None,
                         **kwfields: FieldValue) -> Deferred[list[Message]]:
        """Send a list action (QueueStatus ...); fires with [response, events..., complete]."""
        return self._send(name, fields, kwfields, action_timeout, is_list=True)

    def _send(self, name, fields, kwfields, action_timeout, is_list) -> Deferred:
        try:
            action = Action(name, [*_pairs(fields), *kwfields.items()])
        except (ValueError, TypeError):
            return fail()
        protocol = self._protocol
        if protocol is None:
            return fail(AmiNotConnected(f"AMI not connected; {name} not sent"))
        timeout = action_timeout if action_timeout is not None else self.settings.action_timeout
        send = protocol.send_list_action if is_list else protocol.send_action
        return send(action, timeout)

    def dispatch(self, message: Message) -> None:
        """Hand one event to its subscribers (the protocol's `on_event`; replay helpers too)."""
        self._metrics.events.inc()
        message.server = self.settings.name
        named = self._subscribers.get((message.event or "").lower())
        everything = self._subscribers.get("*")
        # Two plain loops: no tuple built per event (most events have one subscriber or none).
        if named:
            for callback in named:
                self._call_isolated(callback, message.event, message)
        if everything:
            for callback in everything:
                self._call_isolated(callback, message.event, message)

    def wants_event(self, event_name: str) -> bool:
        """Whether any subscriber takes events named `event_name` (the protocol's
        `event_wanted`: events nobody takes are not parsed)."""
        return bool(self._subscribers.get(event_name.lower()) or self._subscribers.get("*"))

    def wants_variable(self, variable: str) -> bool:
        """Whether a VarSet of `variable` has a reader (the protocol's `variable_wanted`): a
        VarSet subscription that reads it or every variable, or a "*" subscriber."""
        wanted = self._varset_wanted
        return wanted is None or variable in wanted or bool(self._subscribers.get("*"))

    def count_unparsed(self, event_name: str, reason: str = "unsubscribed") -> None:
        """An event dropped unparsed (the protocol's `on_unparsed_event`): counted as
        dispatch counts every event, and by why it was dropped."""
        self._metrics.events.inc()
        self._metrics.unparsed[reason].inc()

    # -- service ---------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        self._service.startService()

    def stopService(self) -> Deferred:
        super().stopService()
        self._stop_keepalive()
        return self._service.stopService()

    # -- connection life -------------------------------------------------------------------
    def _build_protocol(self) -> AmiProtocol:
        protocol = AmiProtocol(self._clock, f"cc{next(self._connection_numbers)}")
        protocol.on_event = self.dispatch
        protocol.event_wanted = self.wants_event
        protocol.variable_wanted = self.wants_variable
        protocol.on_unparsed_event = self.count_unparsed
        protocol.on_bad_message = lambda reason, detail: self._metrics.bad(reason)
        protocol.on_lost = self._connection_lost
        return protocol

    def _login(self, protocol: Any) -> Deferred:
        """ClientService's prepareConnection: the protocol is always an AmiProtocol here
        (`_build_protocol`); Twisted types the argument as any IProtocol."""
        return Deferred.fromCoroutine(self._login_steps(protocol))

    async def _login_steps(self, protocol: AmiProtocol) -> None:
        user = self.settings.username
        timeout = self.settings.action_timeout
        login = Action("Login", [("Username", user), ("Secret", self._secret), ("Events", LOGIN_EVENTS)])
        try:
            await protocol.banner_received.addTimeout(timeout, self._clock)
            await protocol.send_action(login, timeout)
        except AmiActionError as exc:
            # Asterisk answers a wrong secret after ~1 s with `Authentication failed` and then
            # closes the connection (ami4_login_ping_events, c2).
            log.error("AMI {server}: login as {user!r} refused by Asterisk: {exc}; retrying "
                      "with backoff", server=self.server, user=user, exc=exc)
            self._reject(protocol)
            raise AmiLoginFailed(str(exc)) from None
        except Exception as exc:
            log.warn("AMI {server}: login as {user!r} did not complete: {kind}: {exc}",
                     server=self.server, user=user, kind=type(exc).__name__, exc=exc)
            self._reject(protocol)
            raise
        self._logged_in(protocol)

    def _reject(self, protocol: AmiProtocol) -> None:
        # Twisted's ClientService has no transition for the disconnect of a connection whose
        # prepareConnection failed (automat raises NoTransition, logged as an unhandled error).
        # That connection already counts as a failed attempt, so its notification is muted.
        if hasattr(protocol, "_lostNotification"):
            protocol._lostNotification = lambda reason: None
        if protocol.transport is not None:
            protocol.transport.loseConnection()

    def _logged_in(self, protocol: AmiProtocol) -> None:
        self._protocol = protocol
        self._logins += 1
        if self._logins > 1:
            self._metrics.reconnects.inc()
        self._metrics.connected.set(1)
        log.info("AMI {server}: logged in as {user!r} ({banner})", server=self.server,
                 user=self.settings.username, banner=protocol.banner)
        self._stop_keepalive()
        self._keepalive = LoopingCall(self._ping)
        self._keepalive.clock = self._clock
        self._keepalive.start(self.settings.ping_interval, now=False)
        for callback in list(self._on_connected):
            self._call_isolated(callback, "on_connected")

    def _connection_lost(self, protocol: AmiProtocol, reason: Failure | None) -> None:
        current = self._protocol
        if current is None or current.action_id_prefix != protocol.action_id_prefix:
            return
        self._protocol = None
        self._metrics.connected.set(0)
        self._stop_keepalive()
        if self.running:
            log.warn("AMI {server}: connection lost ({why}); reconnecting", server=self.server,
                     why=reason.getErrorMessage() if reason is not None else "closed")

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        self._keepalive = None

    def _ping(self) -> None:
        protocol = self._protocol
        if protocol is None:
            return
        pong = protocol.send_action(Action("Ping"), self.settings.action_timeout)
        pong.addErrback(self._ping_failed, protocol)

    def _ping_failed(self, failure: Failure, protocol: AmiProtocol) -> None:
        if failure.check(AmiTimeout):
            log.warn("AMI {server}: Ping unanswered after {t}s; dropping the connection",
                     server=self.server, t=self.settings.action_timeout)
            # abort, not lose: a stuck peer may never drain our write buffer.
            protocol.transport.abortConnection()
        elif failure.check(AmiConnectionLost):
            log.debug("AMI {server}: Ping cut short by the connection loss", server=self.server)
        else:
            log.error("AMI {server}: Ping failed: {why}", server=self.server,
                      why=failure.getErrorMessage())

    # -- handler isolation -----------------------------------------------------------------
    def _call_isolated(self, callback: Callable, what: str | None, *args: object) -> None:
        try:
            result = callback(*args)
        except Exception:
            log.failure("AMI {what} handler {callback!r} failed", what=what, callback=callback)
            self._metrics.bad("handler_error")
            return
        if result is None:
            return  # most handlers are plain functions
        if inspect.iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        if isinstance(result, Deferred):
            result.addErrback(self._handler_failed, what, callback)

    def _handler_failed(self, failure: Failure, what: str | None, callback: Callable) -> None:
        log.failure("AMI {what} handler {callback!r} failed", failure, what=what,
                    callback=callback)
        self._metrics.bad("handler_error")


_FieldsArg = Mapping[str, FieldValue] | Iterable[tuple[str, FieldValue]] | None


def _pairs(fields: _FieldsArg) -> list[tuple[str, FieldValue]]:
    if fields is None:
        return []
    return list(fields.items() if isinstance(fields, Mapping) else fields)
