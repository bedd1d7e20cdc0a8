"""The one AMI feed of queue, member, caller and agent events, and one QueueStatus per login.

Features do not subscribe to these events on the AMI client any more: they register with the
feed (`on`), which keeps the QueuePicture up to date first and then hands each event, in
arrival order, to every consumer that asked for its name, each isolated from the others' errors.
After every AMI (re)login to a server the feed sends ONE QueueStatus to it, replaces that
server's part of the picture with the answer and gives the answer to every `on_status`
consumer (agents' resync, the queue statistics) with the server's name. `refresh()` asks
Asterisk again outside a login (an Asterisk restart seen by its FullyBooted).

Several engines on one Redis (ami.shared): every engine keeps the whole picture (its routing
and its console need it), but only the owner of a server's lease (ami/owner.py) gives that
server's events and answers to the consumers, which count metrics and write Redis: `counts`
says which servers this engine counts. When an engine becomes a server's owner, the owner
calls `resync(server)`.
"""
from __future__ import annotations

import inspect
from typing import Any
from collections.abc import Callable, Iterable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ccengine.queues.picture import CALLER_EVENTS, MEMBER_EVENTS, QueuePicture

log = Logger()
DEFAULT_SERVER = "asterisk"      # config ami.name's default: the one server's name

# Every event the engine's features read from the queue side of Asterisk.
EVENTS = (*MEMBER_EVENTS, *CALLER_EVENTS, "QueueCallerAbandon", "AgentCalled", "AgentConnect",
          "AgentComplete", "AgentRingNoAnswer", "VarSet", "Hangup", "FullyBooted", "Shutdown",
          "AttendedTransfer")

# Of VarSet (the busiest AMI event: 18,783 of 37,806 in transcripts3 load_2cps_ami, 67
# variables), the Variables a consumer reads: the queue statistics' exits
# (stats/queue_events.py reads this set). A VarSet of any other variable is dropped before a
# parse (ami/protocol.py); a consumer that reads another one adds it here.
VARSET_VARIABLES = frozenset({"QUEUESTATUS", "QUEUE_WITHDRAW_INFO"})

Consumer = Callable[[Any], Any]


class QueueFeed:
    def __init__(self, ami: Any, picture: QueuePicture):
        self.ami = ami          # an AmiClient, or AmiServers (several servers)
        self.picture = picture
        self._consumers: dict[str, list[Consumer]] = {name.lower(): [] for name in EVENTS}
        self._status: list[Callable[[list, str], Any]] = []
        self._everywhere: set[Consumer] = set()
        # Which servers' events and answers reach the consumers (ami/owner.py sets it).
        self.counts: Callable[[str], bool] = lambda server: True
        # One client per server name (AmiServers.clients), or the one client.
        self.clients: dict[str, Any] = getattr(ami, "clients", None) or {
            getattr(ami, "name", DEFAULT_SERVER): ami}
        self._lone = next(iter(self.clients)) if len(self.clients) == 1 else None
        for name in EVENTS:
            if name == "VarSet":
                ami.subscribe(name, self._dispatch, variables=VARSET_VARIABLES)
            else:
                ami.subscribe(name, self._dispatch)
        for server, client in self.clients.items():
            client.on_connected(lambda server=server: self.resync(server))

    @property
    def servers(self) -> list[str]:
        return list(self.clients)

    def on(self, names: Iterable[str], consumer: Consumer, owner_only: bool = True) -> None:
        """Call `consumer(message)` for each event named in `names` (after the picture saw
        it); `message.server` names its Asterisk server. `owner_only=False`: also on an
        engine that does not count that server's events (a consumer whose effects are
        atomic in Redis and known to the engine that started them)."""
        for name in names:
            if name.lower() not in self._consumers:
                raise ValueError(f"{name}: not an event of the queue feed (feed.EVENTS)")
            self._consumers[name.lower()].append(consumer)
            if not owner_only:
                self._everywhere.add(consumer)

    def on_status(self, consumer: Callable[[list, str], Any]) -> None:
        """Call `consumer(messages, server)` with a server's QueueStatus answer after each AMI
        login to it."""
        self._status.append(consumer)

    def resync(self, server: str | None = None) -> Deferred:
        """After a login: one QueueStatus for the picture and every status consumer."""
        server = server if server is not None else self.servers[0]
        d = self.refresh(server)

        def share(messages: list) -> None:
            if not self.counts(server):
                return
            for consumer in list(self._status):
                _isolated(consumer, (messages, server), "QueueStatus consumer")
        d.addCallbacks(share, lambda f: log.warn(
            "QueueStatus after the AMI login to {server} failed: {e}", server=server,
            e=f.getErrorMessage()))
        return d

    def refresh(self, server: str | None = None) -> Deferred:
        """Send QueueStatus to `server` (the first one by default), make its answer that
        server's part of the picture; fires with the answer's messages."""
        server = server if server is not None else self.servers[0]
        d = self.clients.get(server, self.ami).send_list_action("QueueStatus")

        def replaced(messages: list) -> list:
            for message in messages:
                if hasattr(message, "server"):
                    message.server = server
            self.picture.replace(messages, server)
            return messages
        return d.addCallback(replaced)

    def _dispatch(self, message: Any) -> None:
        if not getattr(message, "server", "x") and self._lone is not None:
            message.server = self._lone          # a stand-in client that does not tag
        self.picture.apply(message)
        counted = self.counts(getattr(message, "server", ""))
        for consumer in self._consumers.get((message.get("Event") or "").lower(), ()):
            if counted or consumer in self._everywhere:
                _isolated(consumer, (message,), "queue event consumer")


def _isolated(consumer: Callable, arguments: tuple, what: str) -> None:
    try:
        result = consumer(*arguments)
    except Exception:
        log.failure("{what} {consumer!r} failed", what=what, consumer=consumer)
        return
    if inspect.iscoroutine(result):
        result = Deferred.fromCoroutine(result)
    if isinstance(result, Deferred):
        result.addErrback(lambda f: log.failure("{what} {consumer!r} failed", f, what=what,
                                                consumer=consumer))

