"""The one AMI feed of queue, member, caller and agent events, and one QueueStatus per login.

Features do not subscribe to these events on the AMI client any more: they register with the
feed (`on`), which keeps the QueuePicture up to date first and then hands each event, in
arrival order, to every consumer that asked for its name, each isolated from the others' errors.
After every AMI (re)login the feed sends ONE QueueStatus, replaces the picture with it and gives
the answer to every `on_status` consumer (agents' resync, the queue statistics). `refresh()` asks
Asterisk again outside a login (an Asterisk restart seen by its FullyBooted).
"""
from __future__ import annotations

import inspect
from typing import Any
from collections.abc import Callable, Iterable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ccengine.queues.picture import CALLER_EVENTS, MEMBER_EVENTS, QueuePicture

log = Logger()

# Every event the engine's features read from the queue side of Asterisk.
EVENTS = (*MEMBER_EVENTS, *CALLER_EVENTS, "QueueCallerAbandon", "AgentCalled", "AgentConnect",
          "AgentComplete", "AgentRingNoAnswer", "VarSet", "Hangup", "FullyBooted", "Shutdown")

Consumer = Callable[[Any], Any]


class QueueFeed:
    def __init__(self, ami: Any, picture: QueuePicture):
        self.ami = ami
        self.picture = picture
        self._consumers: dict[str, list[Consumer]] = {name.lower(): [] for name in EVENTS}
        self._status: list[Consumer] = []
        for name in EVENTS:
            ami.subscribe(name, self._dispatch)
        ami.on_connected(self.resync)

    def on(self, names: Iterable[str], consumer: Consumer) -> None:
        """Call `consumer(message)` for each event named in `names` (after the picture saw it)."""
        for name in names:
            if name.lower() not in self._consumers:
                raise ValueError(f"{name}: not an event of the queue feed (feed.EVENTS)")
            self._consumers[name.lower()].append(consumer)

    def on_status(self, consumer: Consumer) -> None:
        """Call `consumer(messages)` with the QueueStatus answer after each AMI login."""
        self._status.append(consumer)

    def resync(self) -> Deferred:
        """After a login: one QueueStatus for the picture and every status consumer."""
        d = self.refresh()

        def share(messages: list) -> None:
            for consumer in list(self._status):
                _isolated(consumer, messages, "QueueStatus consumer")
        d.addCallbacks(share, lambda f: log.warn("QueueStatus after the AMI login failed: {e}",
                                                 e=f.getErrorMessage()))
        return d

    def refresh(self) -> Deferred:
        """Send QueueStatus, make its answer the picture; fires with the answer's messages."""
        d = self.ami.send_list_action("QueueStatus")

        def replaced(messages: list) -> list:
            self.picture.replace(messages)
            return messages
        return d.addCallback(replaced)

    def _dispatch(self, message: Any) -> None:
        self.picture.apply(message)
        for consumer in self._consumers.get((message.get("Event") or "").lower(), ()):
            _isolated(consumer, message, "queue event consumer")


def _isolated(consumer: Consumer, argument: Any, what: str) -> None:
    try:
        result = consumer(argument)
    except Exception:
        log.failure("{what} {consumer!r} failed", what=what, consumer=consumer)
        return
    if inspect.iscoroutine(result):
        result = Deferred.fromCoroutine(result)
    if isinstance(result, Deferred):
        result.addErrback(lambda f: log.failure("{what} {consumer!r} failed", f, what=what,
                                                consumer=consumer))

