"""Warm escalation from a call, end to end at protocol level: the escalate AGI session
(scripted Asterisk in the agi1_suite formats), the Atxfer action and the transfer events
replayed from ami8c_atxfer (Asterisk 22.10.1, `atxfer => *2`), with a real redis-server."""
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, gatherResults

from agi_harness import agi_factory, ScriptedAsterisk
from ami_replay import ClientHarness, events, received_messages, retag
from ccengine.agents.directory import AgentDirectory, AgentSession
from ccengine.ami.wire import Message
from ccengine.complaints.escalation import TransferStore, WarmEscalation
from ccengine.complaints.metrics import ComplaintMetrics
from ccengine.complaints.repeat import RepeatComplainants
from ccengine.complaints.service import Complaints
from ccengine.complaints.store import TicketStore
from ccengine.config import ComplaintsConfig
from ccengine.store.base import RedisConnection
from ccengine.calls.records import CallRecordStore

CAPTURE = "ami8c_atxfer"
AGENT_CHANNEL = "PJSIP/1001-00000013"       # the agent's channel in ami8c_atxfer
CALLER_CHANNEL = "PJSIP/caller-00000012"    # the caller's (transferee's) channel
LINKEDID = "cclab-1795366410.24"            # the caller's uniqueid = the call record id


def recorded_response(capture, text):
    return next(m for m in received_messages(capture, "c1") if m.get("Message") == text)


class Rig:
    """AMI harness + escalate route + AGI factory on one task.Clock, over a real Redis."""

    def __init__(self, redis_url, atxfer_reply):
        self.ami = ClientHarness()
        self.ami.login()
        self.clock = self.ami.clock
        self.clock.advance(1_795_366_400)
        self.conn = RedisConnection(redis_url)
        self.registry = CollectorRegistry()
        settings = ComplaintsConfig()
        store = TicketStore(self.conn, settings.deadline_hours)
        self.complaints = Complaints(store, ComplaintMetrics(self.registry), self.clock,
                                     settings.deadline_hours)
        self.records = CallRecordStore(self.conn, 100, 1)
        self.directory = AgentDirectory(self.conn)
        repeat = RepeatComplainants(store, self.clock, 30, 5, "complaint")
        self.route = WarmEscalation(settings, self.complaints, TransferStore(self.conn), repeat,
                                    self.ami.client, self.clock, call_records=self.records,
                                    agent_directory=self.directory)
        self.handled: list[Deferred] = []
        for name, handler in (("AttendedTransfer", self.route.on_attended_transfer),
                              ("Hangup", self.route.on_hangup)):
            self.ami.client.subscribe(name, lambda m, h=handler: self.handled.append(
                Deferred.fromCoroutine(h(m))))
        self._auto_answer({"atxfer": atxfer_reply})

    def _auto_answer(self, replies):
        transport = self.ami.transport
        original = transport.write

        def write(data):
            original(data)
            for block in data.split(b"\r\n\r\n"):
                action = Message.parse(block) if block else None
                reply = replies.get((action.get("Action") or "").lower()) if action else None
                if reply is not None:
                    self.ami.receive([retag(reply, action.action_id)])
        transport.write = write

    async def escalate(self, bridgepeer=CALLER_CHANNEL):
        factory, _, _ = agi_factory({"escalate": self.route}, clock=self.clock)

        def answer(command):
            if command == b"GET VARIABLE BRIDGEPEER":
                return b"200 result=1 (" + bridgepeer.encode() + b")\n"
            if command == b"GET VARIABLE CHANNEL(linkedid)":
                return b"200 result=1 (" + LINKEDID.encode() + b")\n"
            return None
        asterisk = ScriptedAsterisk(factory, answer)
        asterisk.dial("escalate", channel=AGENT_CHANNEL, context="ccengine-escalate")
        await asterisk.finished
        return asterisk

    async def start_transfer(self):
        self.clock.advance(self.route.settings.atxfer_delay)
        await self.route.last_transfer

    async def replay(self, messages):
        self.ami.receive(messages)
        await gatherResults(self.handled)

    def atxfer_actions(self):
        return [m for m in self.ami.written() if m.get("Action") == "Atxfer"]

    def transfers(self, result):
        return self.registry.get_sample_value("ccengine_complaint_transfers_total",
                                              {"result": result})


async def rig_with_call(redis_url, atxfer_reply=None):
    rig = Rig(redis_url, atxfer_reply or recorded_response(CAPTURE, "Atxfer successfully queued"))
    await rig.records.save(LINKEDID, rig.clock.seconds(), {
        "caller": "13800000001", "queue": "inbound", "category": "10", "language": "en",
        "customer": "Li Lei"})
    await rig.directory.claim(AgentSession("2001", "1001", "PJSIP/1001", 0.0))
    return rig


def upto_attended_transfer():
    """ami8c events before the AttendedTransfer: queue, bridge, Atxfer DTMF, hold, the Local
    channel to the supervisor line and the supervisor answering."""
    all_events = events(CAPTURE)
    cut = next(i for i, m in enumerate(all_events) if m.event == "AttendedTransfer")
    return all_events[:cut], all_events[cut]


@pytest_twisted.ensureDeferred
async def test_completed_attended_transfer_leaves_ticket_with_the_supervisor(redis_url):
    """ami8c_atxfer: the agent briefs supervisor 1005 and hangs up -> AttendedTransfer Success;
    the ticket is escalated at supervisor level and records the supervisor."""
    rig = await rig_with_call(redis_url)
    asterisk = await rig.escalate()
    ticket_id = asterisk.variables["CC_TICKET_ID"]
    assert asterisk.variables["CC_ROUTE_OK"] == "1"
    assert rig.atxfer_actions() == []               # not while the AGI runs (DTMF would be eaten)
    await rig.start_transfer()
    [atxfer] = rig.atxfer_actions()
    assert (atxfer["Channel"], atxfer["Context"], atxfer["Exten"]) == (
        AGENT_CHANNEL, "ccengine-supervisor", "5000")
    await rig.replay(events(CAPTURE))
    ticket = await rig.complaints.store.get(ticket_id)
    assert (ticket.state, ticket.level, ticket.number, ticket.agent) == (
        "escalated", "supervisor", "13800000001", "2001")
    assert [h["event"] for h in ticket.history] == ["opened", "escalated", "supervisor_connected"]
    assert ticket.history[1]["reason"] == "warm" and ticket.history[2]["supervisor"] == "1005"
    assert rig.transfers("connected") == 1
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_no_supervisor_answers_agent_gets_caller_back_ticket_stays_escalated(redis_url):
    """No supervisor within the queue timeout: the supervisor line hangs up, Asterisk rebridges
    agent and caller and publishes a failed AttendedTransfer (bridge_basic.c, consulting_exit:
    transfer target hangup -> TRANSFER_REBRIDGE "publishes ... a failed attended transfer";
    the event is ami8c's AttendedTransfer with `Result: Fail` and no destination headers).
    The ticket stays open as escalated at supervisor level and says so in its history."""
    rig = await rig_with_call(redis_url)
    asterisk = await rig.escalate()
    await rig.start_transfer()
    before, success = upto_attended_transfer()
    failed = Message([(k, "Fail" if k == "Result" else v) for k, v in success.items()
                      if not k.startswith("Dest")])
    await rig.replay([*before, failed])
    ticket = await rig.complaints.store.get(asterisk.variables["CC_TICKET_ID"])
    assert (ticket.state, ticket.level) == ("escalated", "supervisor")
    assert ticket.history[-1]["event"] == "supervisor_unavailable"
    assert ticket.history[-1]["result"] == "Fail"
    assert rig.transfers("no_supervisor") == 1 and rig.transfers("connected") == 0
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_caller_hangs_up_during_the_briefing(redis_url):
    """The caller hangs up while the agent briefs the supervisor (Hangup of the transferee's
    channel, format of ami8c's final caller Hangup; bridge_basic.c consulting_exit: transferee
    hangup -> TRANSFER_FAIL, agent and supervisor stay connected): the ticket stays escalated
    at supervisor level with the hangup in its history; a later event changes nothing."""
    rig = await rig_with_call(redis_url)
    asterisk = await rig.escalate()
    await rig.start_transfer()
    before, success = upto_attended_transfer()
    caller_hangup = next(m for m in events(CAPTURE, "Hangup") if m["Channel"] == CALLER_CHANNEL)
    await rig.replay([*before, caller_hangup])
    await rig.replay([success])                      # too late: nothing pending any more
    ticket = await rig.complaints.store.get(asterisk.variables["CC_TICKET_ID"])
    assert (ticket.state, ticket.level) == ("escalated", "supervisor")
    assert [h["event"] for h in ticket.history][-1] == "caller_hangup_during_briefing"
    assert rig.transfers("caller_hangup") == 1 and rig.transfers("connected") == 0
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_atxfer_refused_without_feature_code_is_recorded(redis_url):
    """ami8c0_atxfer_default_featuremap: without `atxfer => *2` Asterisk answers `No attended
    transfer feature code found`; the ticket stays escalated and records the failure."""
    refused = recorded_response("ami8c0_atxfer_default_featuremap",
                                "No attended transfer feature code found")
    rig = await rig_with_call(redis_url, refused)
    asterisk = await rig.escalate()
    await rig.start_transfer()
    ticket = await rig.complaints.store.get(asterisk.variables["CC_TICKET_ID"])
    assert (ticket.state, ticket.level) == ("escalated", "supervisor")
    assert ticket.history[-1]["event"] == "transfer_failed"
    assert "No attended transfer feature code found" in ticket.history[-1]["error"]
    assert rig.transfers("failed") == 1 and rig.route.pending == set()
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_second_escalation_of_the_same_caller_reuses_the_ticket(redis_url):
    """A caller with an active ticket gets no second ticket; the escalation is noted on it."""
    rig = await rig_with_call(redis_url)
    first = (await rig.escalate()).variables["CC_TICKET_ID"]
    second = (await rig.escalate()).variables["CC_TICKET_ID"]
    assert first == second
    ticket = await rig.complaints.store.get(first)
    assert [h["event"] for h in ticket.history] == ["opened", "escalated", "warm_transfer_requested"]
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_bridgepeer_that_is_not_a_channel_opens_nothing(redis_url):
    """A BRIDGEPEER that is not a channel name: no ticket, no CC_ROUTE_OK, no Atxfer."""
    rig = await rig_with_call(redis_url)
    asterisk = await rig.escalate(bridgepeer="PJSIP/caller-1 Action: Hangup")
    assert "CC_ROUTE_OK" not in asterisk.variables and "CC_TICKET_ID" not in asterisk.variables
    assert await rig.complaints.store.list() == []
    rig.clock.advance(5)
    assert rig.atxfer_actions() == []
    await rig.conn.close()
