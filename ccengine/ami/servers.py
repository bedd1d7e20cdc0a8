"""Several Asterisk servers behind one AMI facade (`[[ami.servers]]`, docs/scaling.md).

`AmiServers` offers what domain code uses of an AmiClient (subscribe, on_connected,
send_action, send_list_action, connected) over one client per server, so features do not know
how many servers there are:
- events: a subscription is made on every server's client; each event carries the name of the
  server it came from in `Message.server`;
- actions go to one server: the one named by `on_server(name)` (a caller's channel: the queue
  picture knows its server); else the server of the agent phone in the action's `Interface`
  field, or in its `Channel` field (`PJSIP/1001-0000002a`), by each server's `phones`; else the
  first server listed (outbound calls, a phone no server lists).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred

from ccengine.ami.client import AmiClient
from ccengine.config.sections import phone_matches


def phone_of(channel_or_interface: str) -> str:
    """"PJSIP/1001-0000002a" and "PJSIP/1001" give "1001"; "" when there is no phone."""
    _, slash, rest = channel_or_interface.partition("/")
    if not slash:
        return ""
    name, dash, sequence = rest.rpartition("-")
    # A channel name ends in -<8 hex digits> (the channel's sequence number); an interface
    # does not, and a phone name may itself contain a dash.
    if dash and len(sequence) == 8 and all(c in "0123456789abcdef" for c in sequence):
        return name
    return rest


class AmiServers(MultiService):
    def __init__(self, clients: Sequence[AmiClient], phones: dict[str, tuple[str, ...]]):
        super().__init__()
        if not clients:
            raise ValueError("AmiServers needs at least one client")
        self.clients: dict[str, AmiClient] = {c.settings.name: c for c in clients}
        self.default = clients[0]
        self._phones = [(name, pattern) for name, patterns in phones.items()
                        for pattern in patterns]
        for client in clients:
            client.setServiceParent(self)

    @property
    def names(self) -> list[str]:
        return list(self.clients)

    @property
    def connected(self) -> bool:
        """Logged in to at least one server."""
        return any(client.connected for client in self.clients.values())

    def server_of_phone(self, phone: str) -> str:
        for name, pattern in self._phones:
            if phone_matches(phone, pattern):
                return name
        return self.default.settings.name

    def server_of_interface(self, interface: str) -> str:
        """The server of the phone in a member interface or channel ("PJSIP/1001")."""
        return self.server_of_phone(phone_of(interface))

    def on_server(self, server: str) -> AmiClient:
        return self.clients.get(server, self.default)

    def subscribe(self, event_name: str, callback: Callable, *,
                  variables: Iterable[str] | None = None) -> Callable[[], None]:
        removers = [client.subscribe(event_name, callback, variables=variables)
                    for client in self.clients.values()]

        def remove() -> None:
            for remover in removers:
                remover()
        return remove

    def on_connected(self, callback: Callable[[], object]) -> None:
        """After every login to any server."""
        for client in self.clients.values():
            client.on_connected(callback)

    def send_action(self, name: str, fields: Any = None, /, **kw: Any) -> Deferred:
        return self._route(fields, kw).send_action(name, fields, **kw)

    def send_list_action(self, name: str, fields: Any = None, /, **kw: Any) -> Deferred:
        return self._route(fields, kw).send_list_action(name, fields, **kw)

    def _route(self, fields: Any, kw: dict) -> AmiClient:
        pairs: Iterable = fields.items() if isinstance(fields, dict) else (fields or ())
        values = {str(k).lower(): v for k, v in [*pairs, *kw.items()]}
        for header in ("interface", "channel"):
            phone = phone_of(str(values.get(header) or ""))
            if phone:
                return self.clients[self.server_of_phone(phone)]
        return self.default
