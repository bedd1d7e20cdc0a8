"""Shared parts of the outbound tests: a job store on the real Redis of `redis_url`, the
dialler on a ClientHarness AMI client, and recorded ami5_originate messages retargeted to
the ChannelId/ActionID the engine used (tests/fixtures/ami/ami5_originate.ami.txt)."""
from __future__ import annotations


from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults

import ami_replay
from ccengine.ami.client import AmiSettings
from ccengine.ami.wire import Message
from ccengine.config import OutboundConfig
from ccengine.outbound.dialler import Dialler
from ccengine.outbound.jobs import JobStore, new_job
from ccengine.outbound.metrics import OutboundMetrics
from ccengine.store.base import RedisConnection

QUEUES = ["inbound", "complaint", "outbound", "supervisor"]


def recorded(action_id: str, event: str | None = None) -> Message:
    """The response (event=None) or event of ami5 that answered the lab's `action_id`."""
    for m in ami_replay.received_messages("ami5_originate", "c1"):
        if m.action_id == action_id and (m.event or None) == event:
            return m
    raise LookupError(action_id)


def retarget(msg: Message, **fields: str) -> Message:
    return Message([(k, fields.get(k, v)) for k, v in msg.items()])


def first_of(a: Deferred, b: Deferred) -> Deferred:
    """Fires with 0 or 1, whichever of `a`, `b` fires first; cancels neither."""
    out: Deferred = Deferred()

    def fire(result, index):
        if not out.called:
            out.callback(index)
        return result
    a.addBoth(fire, 0)
    b.addBoth(fire, 1)
    return out


class SpyAmi:
    """Forwards to the harness client and fires `sent` when an action is handed over."""

    def __init__(self, client):
        self.client = client
        self.sent: Deferred = Deferred()
        self.actions: list[tuple[str, list]] = []

    @property
    def connected(self) -> bool:
        return self.client.connected

    def subscribe(self, name, callback, **options):
        return self.client.subscribe(name, callback)

    def _note(self, name, fields):
        self.actions.append((name, fields))
        sent, self.sent = self.sent, Deferred()
        sent.callback(name)

    def send_action(self, name, fields=None, **kw):
        d = self.client.send_action(name, fields, **kw)
        self._note(name, fields)
        return d

    def send_list_action(self, name, fields=None, **kw):
        d = self.client.send_list_action(name, fields, **kw)
        self._note(name, fields)
        return d

    def originates(self) -> int:
        return sum(1 for name, _ in self.actions if name == "Originate")


class Rig:
    # Tuesday 2025-06-03 02:00 UTC = 10:00 in Asia/Shanghai: inside the default window.
    START = 1_748_916_000

    def __init__(self, redis_url: str, config: OutboundConfig | None = None, pool=None):
        # No keepalive Ping while the tests move the clock by minutes.
        self.harness = ami_replay.ClientHarness(AmiSettings(ping_interval=10**11))
        self.harness.login()
        self.clock = self.harness.clock
        self.clock.advance(self.START)
        self.config = config or OutboundConfig()
        self.conn = RedisConnection(redis_url)
        self.jobs = JobStore(self.conn)
        self.registry = CollectorRegistry()
        self.metrics = OutboundMetrics(self.registry, QUEUES)
        self.ami = SpyAmi(self.harness.client)
        self.finals: list[tuple[str, str]] = []
        self.dialler = Dialler(self.ami, self.jobs, self.config, self.clock,
                               self.metrics, pool, on_final=self._final)
        self.handlers: list[Deferred] = []
        self.harness.client.subscribe("OriginateResponse", lambda m: self.handlers.append(
            ensureDeferred(self.dialler.on_originate_response(m))))

    async def _final(self, job, state, now):
        self.finals.append((job.id, state))

    async def settle(self) -> None:
        """Wait for the event handlers the AMI client started."""
        pending, self.handlers = self.handlers, []
        await gatherResults(pending)

    async def claimed_job(self, kind="survey", number="13800000001", job_id="sv-1"):
        job = new_job(job_id, kind, number, self.clock.seconds(), "Asia/Shanghai",
                      queue="inbound", origin="ticket:42" if kind == "followup" else "")
        assert await self.jobs.add(job)
        return await self.jobs.claim(kind, self.clock.seconds(), 120)

    def service(self, sources=None, pool=None):
        """The real DiallerService on this rig (no callback source unless given)."""
        from ccengine.config import WaitingConfig
        from ccengine.outbound.sources import Sources
        from ccengine.outbound.windows import CallingWindow
        from ccengine.outbound.worker import DiallerService
        sources = sources or Sources(self.conn, self.jobs, "Asia/Shanghai")
        self.dialler.on_final = sources.finish_job
        return DiallerService(self.jobs, self.dialler, sources, pool,
                              CallingWindow.from_config(self.config), self.config,
                              WaitingConfig(), self.metrics, self.clock, "Asia/Shanghai")

    def sample(self, name, **labels):
        return self.registry.get_sample_value(name, labels)




def channels_list(action_id: str, *channels: tuple[str, str]) -> list[Message]:
    """CoreShowChannels answer (Asterisk 22 docs): ack, one CoreShowChannel per channel, end."""
    items = [Message([("Response", "Success"), ("ActionID", action_id), ("EventList", "start"),
                      ("Message", "Channels will follow")])]
    for uniqueid, state in channels:
        items.append(Message([("Event", "CoreShowChannel"), ("ActionID", action_id),
                              ("Channel", "Local/13800000001@ccengine-outbound-00000001;1"),
                              ("ChannelState", state), ("Uniqueid", uniqueid)]))
    items.append(Message([("Event", "CoreShowChannelsComplete"), ("ActionID", action_id),
                          ("EventList", "Complete"), ("ListItems", str(len(channels)))]))
    return items
