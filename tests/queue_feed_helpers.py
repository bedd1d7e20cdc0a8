"""A queue feed (ccengine/queues/feed.py) over a stand-in AMI client for feature tests."""
from __future__ import annotations

from twisted.internet.defer import succeed

from ccengine.queues.feed import QueueFeed
from ccengine.queues.picture import QueuePicture


class FakeAmi:
    """Records subscriptions, on_connected callbacks and the list actions sent; a QueueStatus
    is answered with `status` (recorded messages)."""

    def __init__(self, status=()):
        self.subscribed: set[str] = set()
        self.callbacks: dict[str, list] = {}
        self.connected_callbacks: list = []
        self.sent: list[str] = []
        self.status = list(status)

    def subscribe(self, name, callback):
        self.subscribed.add(name)
        self.callbacks.setdefault(name.lower(), []).append(callback)

    def on_connected(self, callback):
        self.connected_callbacks.append(callback)

    def send_list_action(self, name, **fields):
        self.sent.append(name)
        return succeed(self.status)

    def login(self):
        """What AmiClient does after a login: every on_connected callback."""
        for callback in self.connected_callbacks:
            callback()

    def event(self, message):
        for callback in self.callbacks.get((message.get("Event") or "").lower(), []):
            callback(message)


def feed_over(ami, clock) -> QueueFeed:
    return QueueFeed(ami, QueuePicture(clock))
