"""Several Asterisk servers (`[[ami.servers]]`, issue 23): the configuration, the routing of
actions (ami/servers.py), each server's part of the queue picture, of the statistics and of
the agents' resync, and the feed giving consumers only the servers this engine counts.

Events are built from captured ones (tests/fixtures/ami: d_queuestatus_waiting_caller,
a_answered); only the server they came from differs."""
from __future__ import annotations

import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

import ami_replay
from ccengine.agents.directory import AgentSession
from ccengine.agents.resync import Resync
from ccengine.ami.servers import AmiServers, phone_of
from ccengine.ami.wire import Message
from ccengine.config import ConfigError, QueueConfig, parse_config
from ccengine.queues.feed import QueueFeed
from ccengine.queues.picture import QueuePicture
from ccengine.stats import QueueStats


def servers_config(*servers: dict) -> dict:
    return {"ami": {"servers": list(servers)}}


def test_one_server_by_default_with_the_flat_fields():
    config = parse_config({"ami": {"host": "10.0.0.5", "port": 5039}})
    (only,) = config.ami.server_list()
    assert (only.name, only.host, only.port, only.phones) == ("asterisk", "10.0.0.5", 5039, ())


def test_several_servers_are_read_in_order():
    config = parse_config(servers_config(
        {"name": "pbx-a", "host": "10.0.0.21", "phones": ["1000-1999"]},
        {"name": "pbx-b", "host": "10.0.0.22", "secret_env": "SECRET_B",
         "phones": ["2000-2999", "sup-1"]}))
    a, b = config.ami.server_list()
    assert (a.name, a.host, b.name, b.secret_env, b.phones) == \
        ("pbx-a", "10.0.0.21", "pbx-b", "SECRET_B", ("2000-2999", "sup-1"))
    assert b.secret({"SECRET_B": "s3"}) == "s3" and a.secret({}) is None


@pytest.mark.parametrize("servers, problem", [
    ([{"name": "a"}, {"name": "a"}], "the name 'a' is given twice"),
    ([{"name": "a", "phones": ["1000-1999"]}, {"name": "b", "phones": ["1500"]}],
     "phones '1000-1999' of 'a' and '1500' of 'b' overlap"),
    ([{"name": "a", "phones": ["1000-1999"]}, {"name": "b", "phones": ["1900-2100"]}],
     "overlap"),
    ([{"name": "a", "phones": ["1999-1000"]}], "a range needs two numbers"),
    ([{"name": "a", "phones": ["10 01"]}], "neither a phone name nor a range"),
    ([{"name": "a b"}], "letters, digits"),
    ([{"name": "a", "port": 70000}], "port"),
])
def test_bad_server_lists_are_refused_with_the_reason(servers, problem):
    with pytest.raises(ConfigError) as refused:
        parse_config(servers_config(*servers))
    assert problem in str(refused.value)


class Client:
    """Stands in for AmiClient: a name, subscriptions, the actions sent."""

    def __init__(self, name: str, status: list | None = None):
        from ccengine.ami.client import AmiSettings
        self.settings = AmiSettings(name=name)
        self.name = name
        self.connected = True
        self.sent: list[tuple[str, object]] = []
        self.subscribers: dict[str, list] = {}
        self.logins: list = []
        self.status = status or []
        self.parent = None

    def setServiceParent(self, parent):
        self.parent = parent

    def subscribe(self, name, callback, **options):
        self.subscribers.setdefault(name.lower(), []).append(callback)
        return lambda: self.subscribers[name.lower()].remove(callback)

    def on_connected(self, callback):
        self.logins.append(callback)

    def send_action(self, name, fields=None, **kw):
        self.sent.append((name, fields or kw))
        return succeed(None)

    def send_list_action(self, name, fields=None, **kw):
        self.sent.append((name, fields or kw))
        return succeed([Message(m.items()) for m in self.status])

    def event(self, message: Message) -> None:
        """What AmiClient.dispatch does: tag the server, hand the event on."""
        message.server = self.name
        for callback in self.subscribers.get((message.event or "").lower(), []):
            callback(message)


def two_servers(status_a=None, status_b=None):
    a, b = Client("pbx-a", status_a), Client("pbx-b", status_b)
    return AmiServers([a, b], {"pbx-a": ("1000-1999",), "pbx-b": ("2000-2999", "sup-1")}), a, b


def test_phone_of_reads_interfaces_and_channel_names():
    assert phone_of("PJSIP/1001") == "1001"
    assert phone_of("PJSIP/1001-0000002a") == "1001"
    assert phone_of("PJSIP/sup-1") == "sup-1"          # a dash in the name, not a sequence
    assert phone_of("Local/5000@ccengine-supervisor-00000001;1") != "1001"
    assert phone_of("nonsense") == ""


def test_actions_go_to_the_server_of_the_phone_else_the_first():
    ami, a, b = two_servers()
    ami.send_action("QueueAdd", [("Queue", "inbound"), ("Interface", "PJSIP/2001")])
    ami.send_action("Atxfer", Channel="PJSIP/1003-00000011", Exten="5000")
    ami.send_action("Originate", [("Channel", "PJSIP/sup-1"), ("Application", "ChanSpy")])
    ami.send_action("UserEvent", UserEvent="CCTicketEscalated")
    ami.send_action("QueuePause", [("Interface", "PJSIP/7777"), ("Paused", True)])
    ami.on_server("pbx-b").send_action("QueueWithdrawCaller", Caller="PJSIP/trunk-00000001")
    assert [name for name, _ in a.sent] == ["Atxfer", "UserEvent", "QueuePause"]
    assert [name for name, _ in b.sent] == ["QueueAdd", "Originate", "QueueWithdrawCaller"]
    assert ami.server_of_interface("PJSIP/2500") == "pbx-b"
    assert ami.server_of_interface("PJSIP/9999") == "pbx-a"          # listed nowhere
    assert a.parent is ami and b.parent is ami                      # started with it
    a.connected = False
    assert ami.connected                                             # one is enough


def entry(uniqueid: str, position: str) -> Message:
    """A QueueEntry of the d_queuestatus_waiting_caller capture with another id."""
    recorded = next(m for m in status_capture() if m.get("Event") == "QueueEntry")
    return Message([(k, uniqueid if k == "Uniqueid" else position if k == "Position" else v)
                    for k, v in recorded.items()])


def status_capture() -> list[Message]:
    return [p.message for p in ami_replay.read_transcript("d_queuestatus_waiting_caller")
            if p.direction == "received" and not p.is_banner and not p.is_close]


def join_of(uniqueid: str, server: str, position: str = "1") -> Message:
    """The QueueCallerJoin of a_answered with another Uniqueid, from `server`."""
    recorded = next(p.message for p in ami_replay.read_transcript("a_answered")
                    if p.direction == "received" and p.message.get("Event") == "QueueCallerJoin")
    message = Message([(k, uniqueid if k == "Uniqueid" else position if k == "Position" else v)
                       for k, v in recorded.items()])
    message.server = server
    return message


def test_a_servers_queuestatus_replaces_only_its_part_of_the_picture():
    picture = QueuePicture(Clock())
    queue = join_of("a.1", "pbx-a")["Queue"]
    for uniqueid, server in (("a.1", "pbx-a"), ("b.1", "pbx-b")):
        picture.apply(join_of(uniqueid, server))
    # Positions count per server: both are first in their own Asterisk's queue.
    assert sorted((c.server, c.position) for c in picture.waiting(queue)) == \
        [("pbx-a", 1), ("pbx-b", 1)]
    fresh = entry("a.2", "1")
    fresh.server = "pbx-a"
    picture.replace([fresh], "pbx-a")
    assert sorted((c.uniqueid, c.server) for c in picture.callers.values()) == \
        [("a.2", "pbx-a"), ("b.1", "pbx-b")]


def test_the_feed_keeps_every_servers_picture_but_counts_only_owned_servers():
    ami, a, b = two_servers(status_a=[entry("a.9", "1")], status_b=[])
    feed = QueueFeed(ami, QueuePicture(Clock()))
    owned = {"pbx-a"}
    feed.counts = lambda server: server in owned
    seen, everywhere, statuses = [], [], []
    feed.on(("QueueCallerJoin",), lambda m: seen.append((m.server, m["Uniqueid"])))
    feed.on(("QueueCallerJoin",), lambda m: everywhere.append(m.server), owner_only=False)
    feed.on_status(lambda messages, server: statuses.append(server))
    a.event(join_of("a.1", "pbx-a"))
    b.event(join_of("b.1", "pbx-b"))
    assert seen == [("pbx-a", "a.1")]
    assert everywhere == ["pbx-a", "pbx-b"]          # e.g. the escalation's transfer outcome
    assert set(feed.picture.callers) == {"a.1", "b.1"}                # both pictures live
    for login in a.logins + b.logins:                                # a login to each
        login()
    assert statuses == ["pbx-a"]
    assert [name for name, _ in a.sent] == ["QueueStatus"] == [name for name, _ in b.sent]
    assert set(feed.picture.callers) == {"a.9"}                      # a's answer, b's (empty)


def test_statistics_count_per_server_and_a_resync_closes_only_its_callers():
    registry = CollectorRegistry()
    queues = {"complaint": QueueConfig(name="complaint")}      # a_answered's queue
    stats = QueueStats.build(registry, queues, Clock(), servers=("pbx-a", "pbx-b"))
    stats.consumer.handle(join_of("a.1", "pbx-a"))
    stats.consumer.handle(join_of("b.1", "pbx-b"))

    def offered(server: str) -> float:
        return registry.get_sample_value("ccengine_queue_offered_total",
                                         {"queue": "complaint", "server": server})
    assert (offered("pbx-a"), offered("pbx-b")) == (1, 1)
    stats.consumer.resync([], "pbx-a")               # pbx-a says: nobody waits
    assert stats.consumer.tracked == 1
    assert registry.get_sample_value("ccengine_queue_exits_total", {
        "queue": "complaint", "reason": "other", "server": "pbx-a"}) == 1
    stats.collector.counts = lambda server: server == "pbx-b"
    waiting = {"queue": "complaint"}
    assert registry.get_sample_value("ccengine_queue_waiting_calls", waiting) == 1
    stats.collector.counts = lambda server: False
    assert registry.get_sample_value("ccengine_queue_waiting_calls", waiting) == 0


class Directory:
    def __init__(self, sessions):
        self._sessions = sessions

    async def sessions(self):
        return dict(self._sessions)

    async def numbers(self):
        return list(self._sessions)


class States:
    snapshot: dict = {}

    async def load(self, numbers):
        self.loaded = list(numbers)
        return {}

    async def put(self, number, queue, ms):
        pass

    async def drop(self, number, queue):
        pass


class Actions:
    def __init__(self):
        self.added = []

    async def add(self, queue, interface, number, penalty, paused=False, reason=""):
        self.added.append((queue, interface))

    async def remove(self, queue, interface):
        pass

    async def pause(self, interface, paused, reason="", queue=None):
        pass


class Metrics:
    class _Counter:
        def labels(self, *a):
            return self

        def inc(self, n=1):
            pass
    resyncs = repairs = _Counter()


@pytest_twisted.ensureDeferred
async def test_a_servers_resync_relogs_only_the_agents_whose_phones_are_there():
    ami, _, _ = two_servers()
    sessions = {"1001": AgentSession("1001", "1001", "PJSIP/1001", 0.0, {"inbound": 0}),
                "2001": AgentSession("2001", "2001", "PJSIP/2001", 0.0, {"inbound": 0})}
    actions, states = Actions(), States()
    settings = parse_config({}).agents
    resync = Resync(None, Directory(sessions), states, actions, settings, Clock(), Metrics(),
                    server_of=ami.server_of_interface)
    await resync.run(status=[], server="pbx-b")      # pbx-b lost its members (a restart)
    assert actions.added == [("inbound", "PJSIP/2001")]
    assert states.loaded == ["2001"]
