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

    def subscribe(self, name, callback, **options):
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


# The queue counters and histograms carry `server` (stats/metrics.py QueueMetrics); with one
# Asterisk it is the default name, ami.name = "asterisk".
SERVER_LABELLED = ("ccengine_queue_offered", "ccengine_queue_answered", "ccengine_queue_abandoned",
                   "ccengine_queue_short_abandoned", "ccengine_queue_exits",
                   "ccengine_queue_answer_time_seconds", "ccengine_queue_abandon_wait_seconds",
                   "ccengine_queue_talk_time_seconds")


def queue_labels(name: str, labels: dict) -> dict:
    """`labels` plus server="asterisk" for a queue counter or histogram sample."""
    if name.startswith(SERVER_LABELLED) and "server" not in labels:
        return {**labels, "server": "asterisk"}
    return labels
