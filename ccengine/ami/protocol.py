"""AMI protocol: frames a connection into messages and matches responses to actions.

No business logic: responses go to the Deferred of the action with the same ActionID, event
lists (QueueStatus ...) are collected until their `EventList: Complete` event, every other
event goes to `on_event`. Problems with incoming data are reported through `on_bad_message`
with a reason from BAD_MESSAGE_REASONS and never raise out of `dataReceived`.
"""
from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ccengine.ami.wire import (Action, AmiFrameTooLarge, BlockSplitter, Message,
                              is_plain_block, peek_event, peek_variable)

log = Logger()

# Bounded label values for ccengine_ami_bad_events_total{reason}.
BAD_MESSAGE_REASONS = ("malformed_line", "no_type", "too_large", "unknown_response",
                       "handler_error")
# Bounded label values for ccengine_ami_unparsed_events_total{reason}: why an event was
# dropped before a parse (no subscriber for its name; a VarSet of a variable nobody reads).
UNPARSED_REASONS = ("unsubscribed", "varset_variable")


class AmiError(Exception):
    """Base of the AMI errors."""


class AmiActionError(AmiError):
    """Asterisk answered `Response: Error`; `message` is the whole response."""

    def __init__(self, message: Message):
        super().__init__(message.get("Message", "AMI action failed"))
        self.message = message


class AmiConnectionLost(AmiError):
    """The connection closed while the action was pending (it is not re-sent)."""


class AmiTimeout(AmiError):
    """No response (or no end of the event list) within the action's timeout."""


class _Pending:
    __slots__ = ("deferred", "is_list", "messages", "timer")

    def __init__(self, deferred: Deferred, is_list: bool):
        self.deferred = deferred
        self.is_list = is_list
        self.messages: list[Message] = []
        self.timer: IDelayedCall | None = None


class AmiProtocol(Protocol):
    BATCH = 2000            # blocks handled per reactor turn (a storm waits in TCP, not here)
    """One AMI connection. Set `on_event`, `on_bad_message` and `on_lost` before data flows."""

    transport: ITCPTransport          # set by Twisted before connectionMade

    def __init__(self, clock: IReactorTime, action_id_prefix: str = "cc"):
        self.clock = clock
        self.action_id_prefix = action_id_prefix
        self.banner: str | None = None
        self.banner_received: Deferred[str] = Deferred()
        self.on_event: Callable[[Message], object] | None = None
        self.on_bad_message: Callable[[str, object], object] | None = None
        self.on_lost: Callable[[AmiProtocol, Failure | None], object] | None = None
        # Optional: `event_wanted(name)` False lets an event nobody wants go unparsed (when no
        # action is pending and the block is well-formed), and so does `variable_wanted(name)`
        # False for a VarSet of that Variable; it is then only reported to
        # `on_unparsed_event(name, reason)` (reason from UNPARSED_REASONS).
        self.event_wanted: Callable[[str], bool] | None = None
        self.variable_wanted: Callable[[str], bool] | None = None
        self.on_unparsed_event: Callable[[str, str], object] | None = None
        self.lost = False
        self._splitter = BlockSplitter()
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._bad_logged: dict[str, tuple[float, int]] = {}   # reason -> (logged at, skipped)
        self._backlog: deque[bytes] = deque()   # blocks received, not handled yet
        self._draining = False                  # a _drain is scheduled
        self._paused = False                    # the socket is paused meanwhile

    # -- sending ---------------------------------------------------------------------------
    def send_action(self, action: Action, timeout: float) -> Deferred[Message]:
        """Write `action` with a fresh ActionID; fires with its Success response."""
        return self._send(action, timeout, is_list=False)

    def send_list_action(self, action: Action, timeout: float) -> Deferred[list[Message]]:
        """Write a list action (QueueStatus, QueueSummary ...); fires with
        [response, event, ..., the `EventList: Complete` event]."""
        return self._send(action, timeout, is_list=True)

    def _send(self, action: Action, timeout: float, is_list: bool) -> Deferred:
        if self.lost or self.transport is None:
            return fail(AmiConnectionLost("AMI connection is closed"))
        action_id = f"{self.action_id_prefix}-{next(self._ids)}"
        try:
            data = action.with_action_id(action_id).to_bytes()
        except ValueError:
            return fail()
        deferred: Deferred = Deferred(lambda d: self._forget(action_id))
        pending = _Pending(deferred, is_list)
        pending.timer = self.clock.callLater(timeout, self._timed_out, action_id, action.name)
        self._pending[action_id] = pending
        self.transport.write(data)
        return deferred

    def _forget(self, action_id: str) -> None:
        pending = self._pending.pop(action_id, None)
        if pending is not None and pending.timer is not None and pending.timer.active():
            pending.timer.cancel()

    def _finish(self, action_id: str, result: object) -> None:
        pending = self._pending.pop(action_id)
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        if isinstance(result, (Exception, Failure)):
            pending.deferred.errback(result)
        else:
            pending.deferred.callback(result)

    def _timed_out(self, action_id: str, name: str) -> None:
        if action_id in self._pending:
            self._pending[action_id].timer = None
            self._finish(action_id, AmiTimeout(f"no answer to AMI {name} ({action_id})"))

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # -- receiving -------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        try:
            blocks = self._splitter.feed(data)
        except AmiFrameTooLarge as exc:
            self._bad("too_large", exc)
            # Without a terminator there is no safe place to resume; a fresh connection is.
            self.transport.abortConnection()
            return
        if self.banner is None and self._splitter.banner is not None:
            self.banner = self._splitter.banner
            self.banner_received.callback(self.banner)
        self._backlog.extend(blocks)
        if not self._draining:
            self._drain()

    def _drain(self) -> None:
        """Handle at most BATCH blocks, then give the reactor back (FastAGI's callers first)
        and continue on the next turn; meanwhile the socket is paused, so TCP pushes back on
        Asterisk instead of the engine queueing an event storm in memory."""
        self._draining = False
        wanted, unparsed = self.event_wanted, self.on_unparsed_event
        variable_wanted = self.variable_wanted
        backlog = self._backlog
        for _ in range(min(len(backlog), self.BATCH)):
            block = backlog.popleft()
            # With an action pending, an event may be an item of its list: always parsed.
            if wanted is not None and unparsed is not None and not self._pending:
                name = peek_event(block)
                if name is not None:
                    if not wanted(name):
                        if is_plain_block(block):
                            unparsed(name, "unsubscribed")
                            continue
                    elif name == "VarSet" and variable_wanted is not None \
                            and is_plain_block(block):
                        variable = peek_variable(block)
                        if variable is not None and not variable_wanted(variable):
                            unparsed(name, "varset_variable")
                            continue
            self._message_received(Message.parse(block))
            if self.lost:
                backlog.clear()
                return
        if backlog:
            if not self._paused:
                self._paused = True
                self.transport.pauseProducing()  # type: ignore[attr-defined]  # a TCP transport is a producer
            self._draining = True
            self.clock.callLater(0, self._drain)
        elif self._paused:
            self._paused = False
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def _message_received(self, message: Message) -> None:
        if message.malformed:
            self._bad("malformed_line", message)
        # Event first: OriginateResponse is an event that also carries `Response: Success` or
        # `Response: Failure` and the Originate's ActionID (ami5_originate).
        if message.event is not None:
            self._event_received(message)
        elif message.response is not None:
            self._response_received(message)
        else:
            self._bad("no_type", message)

    def _response_received(self, message: Message) -> None:
        action_id = message.action_id
        pending = self._pending.get(action_id) if action_id is not None else None
        if action_id is None or pending is None or pending.messages:
            self._bad("unknown_response", message)
        elif (message.response or "").lower() == "error":
            self._finish(action_id, AmiActionError(message))
        elif not pending.is_list:
            self._finish(action_id, message)
        else:
            pending.messages.append(message)
            # A list action answered without `EventList: start` sends no list.
            if (message.get("EventList") or "").lower() != "start":
                self._finish(action_id, pending.messages)

    def _event_received(self, message: Message) -> None:
        # Only list items are collected; other events that echo an ActionID (UserEvent,
        # OriginateResponse) are ordinary events. Nothing pending (most events): no lookup.
        action_id = message.action_id
        pending = self._pending.get(action_id) if self._pending and action_id else None
        if action_id is not None and pending is not None and pending.is_list and pending.messages:
            pending.messages.append(message)
            if (message.get("EventList") or "").lower() == "complete":
                self._finish(action_id, pending.messages)
            return
        if self.on_event is None:
            return
        try:
            self.on_event(message)
        except Exception as exc:  # one bad handler must not stop the stream
            log.failure("AMI event handler failed on {event}", event=message.event)
            self._bad("handler_error", exc)

    def _bad(self, reason: str, detail: object) -> None:
        # Logged once per reason and minute with how many more came (the metric counts each):
        # a peer repeating bad data cannot fill the log (1,001 unknown responses were 1,001
        # lines).
        now = time.monotonic()
        last, skipped = self._bad_logged.get(reason, (-1e9, 0))
        if now - last >= 60.0:
            more = f" ({skipped} more since the last line)" if skipped else ""
            log.warn("AMI: bad incoming data ({reason}){more}: {detail!r:.200}", reason=reason,
                     more=more, detail=detail)
            self._bad_logged[reason] = (now, 0)
        else:
            self._bad_logged[reason] = (last, skipped + 1)
        if self.on_bad_message is not None:
            self.on_bad_message(reason, detail)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = True
        why = f"AMI connection lost: {reason.getErrorMessage() if reason else 'closed'}"
        if not self.banner_received.called:
            self.banner_received.errback(AmiConnectionLost(why))
        for action_id in list(self._pending):
            self._finish(action_id, AmiConnectionLost(why))
        if self.on_lost is not None:
            self.on_lost(self, reason)
