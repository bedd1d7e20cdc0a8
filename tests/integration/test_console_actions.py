"""Console actions (ccengine/console/actions.py) on real Redis: the exact AMI actions sent,
the refusals, and the audit log.

AMI answers are the recorded ones (tests/ami_server.py `recorded_answer`): Originate from
ami5_originate, QueuePause from c_member_actions, QueueWithdrawCaller from
ami6_queue_priority_withdraw. ChanSpy's arguments are checked against Asterisk's
documentation (docs.asterisk.org, Asterisk 22, Dialplan Applications / ChanSpy:
`ChanSpy([chanprefix,[options]])`, options b, B, E, q, S, w) and, on a real Asterisk, by
tests/asterisk/test_console_spy.py.
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.defer import succeed

import ami_replay
from ami_server import recorded_answer
from engine_context import engine_context, records_for
from ccengine.agents import feature as agents
from ccengine.agents.directory import AgentRecord, AgentSession
from ccengine.agents.state import MemberState
from ccengine.complaints import feature as complaints
from ccengine.console.accounts import Account
from ccengine.console.actions import AuditLog, ConsoleActions
from ccengine.queues.picture import QueuePicture

NOW = 1796210000.0
ALICE = Account("alice", "supervisor", phone="2001")
OLGA = Account("olga", "operations")
ANSWERS = {"Originate": recorded_answer("ami5_originate", "originate", lambda f: True),
           "QueuePause": recorded_answer("c_member_actions", "queuepause",
                                         lambda f: f.get("paused") == "true"),
           "QueueWithdrawCaller": recorded_answer("ami6_queue_priority_withdraw",
                                                  "queuewithdrawcaller", lambda f: True)}


class RecordingAmi:
    connected = True

    def __init__(self):
        self.sent: list[tuple[str, list]] = []

    def send_action(self, name, fields=None, **kw):
        self.sent.append((name, list(fields or []) + list(kw.items())))
        return succeed(ANSWERS[name][0])

    def on_server(self, server):
        return self

    def server_of_interface(self, interface):
        # Two servers in the refusal test: agent phones 1xxx on pbx-a, the rest on pbx-b.
        return self.servers(interface) if hasattr(self, "servers") else "asterisk"


@pytest.fixture
def setup(redis_url):
    ami = RecordingAmi()
    _, ctx = engine_context(redis_url, now=NOW, ami=ami)
    staff = agents.build(ctx)
    handled = complaints.build(ctx, records=records_for(ctx), directory=staff.directory)
    picture = QueuePicture(ctx.clock)
    audit = AuditLog(ctx.redis, 100)
    actions = ConsoleActions(ctx.config, ctx.clock, ami, picture, staff.directory, staff.states,
                             staff.codes, staff.staffing, handled.complaints, audit)
    return actions, ami, staff, picture, audit, handled


async def logged_in(staff, number="1001", phone="1001", state="on_call"):
    await staff.directory.add(AgentRecord(number, {"inbound": 0}, ("zh",), "", "x"))
    await staff.directory.claim(AgentSession(number, phone, f"PJSIP/{phone}", NOW - 60,
                                             {"inbound": 0}))
    await staff.states.put(number, "inbound", MemberState(state, "", NOW - 30))


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("mode, options", [("listen", "bqES"), ("whisper", "bqESw"),
                                           ("barge", "bqESB")])
async def test_spy_originates_to_the_supervisors_own_phone(setup, mode, options):
    actions, ami, staff, *_ = setup
    await logged_in(staff)
    outcome = await actions.run(ALICE, mode, {"agent": "1001", "phone": "9999"})
    assert outcome.ok, outcome.message
    assert ami.sent == [("Originate", [
        ("Channel", "PJSIP/2001"), ("Application", "ChanSpy"),
        ("Data", f"PJSIP/1001-,{options}"), ("CallerID", f'"{mode} 1001" <1001>'),
        ("Timeout", 30000), ("Async", "true")])]


@pytest_twisted.ensureDeferred
async def test_spy_refusals(setup):
    actions, ami, staff, *_ = setup
    await logged_in(staff, state="idle")
    assert "not on a call" in (await actions.run(ALICE, "listen", {"agent": "1001"})).message
    assert "no phone" in (await actions.run(Account("bea", "supervisor"), "listen",
                                            {"agent": "1001"})).message
    assert "not logged in" in (await actions.run(ALICE, "listen", {"agent": "1002"})).message
    assert "read-only" in (await actions.run(OLGA, "listen", {"agent": "1001"})).message
    assert ami.sent == []


@pytest_twisted.ensureDeferred
async def test_spy_is_refused_across_asterisk_servers(setup):
    """ChanSpy runs on the agent's Asterisk and rings the supervisor's phone from there: with
    the two phones on different servers (ami.servers) the console says so instead."""
    actions, ami, staff, *_ = setup
    await logged_in(staff)
    ami.servers = lambda interface: "pbx-a" if interface.startswith("PJSIP/1") else "pbx-b"
    outcome = await actions.run(ALICE, "listen", {"agent": "1001"})
    assert not outcome.ok
    assert outcome.message == ("refused: agent 1001's phone is on pbx-a, yours on pbx-b: "
                               "use a phone registered to pbx-a")
    assert ami.sent == []


@pytest_twisted.ensureDeferred
async def test_pause_sends_the_configured_reason_and_is_audited(setup):
    actions, ami, staff, _, audit, _ = setup
    await logged_in(staff, state="idle")
    refused = await actions.run(ALICE, "pause", {"agent": "1001", "reason": "lunch"})
    assert not refused.ok and "pause reason" in refused.message
    # NOW is inside inbound's hours and 1001 is its only agent: the staffing guard refuses...
    guarded = await actions.run(ALICE, "pause", {"agent": "1001", "reason": "2"})
    assert not guarded.ok and "minimum staffing" in guarded.message
    # ... until the supervisor overrides it (one-time permission, agents allow-pause).
    outcome = await actions.run(ALICE, "pause", {"agent": "1001", "reason": "2", "override": "1"})
    assert outcome.ok, outcome.message
    assert ami.sent == [("QueuePause", [("Interface", "PJSIP/1001"), ("Paused", True),
                                        ("Reason", "meal")])]
    assert staff.states.snapshot[("1001", "inbound")].state == "paused"
    entries = await audit.recent(5)
    assert [(e["user"], e["action"], e["target"], e["ok"]) for e in entries] == [
        ("alice", "pause", "1001", True), ("alice", "pause", "1001", False),
        ("alice", "pause", "1001", False)]
    assert entries[0]["reason"] == "2" and entries[0]["at"] == pytest.approx(NOW)


@pytest_twisted.ensureDeferred
async def test_move_withdraws_the_caller_keeping_the_channels_place(setup):
    actions, ami, staff, picture, *_ = setup
    # Caller B of ami6_queue_priority_withdraw, put in the picture by its recorded join.
    join = next(m for m in ami_replay.events("ami6_queue_priority_withdraw", "QueueCallerJoin")
                if m.get("Channel") == "PJSIP/caller-0000000b")
    picture.apply(join)
    uniqueid = join["Uniqueid"]
    assert "already in" in (await actions.run(ALICE, "move", {
        "caller": uniqueid, "queue": "inbound"})).message
    assert "no such queue" in (await actions.run(ALICE, "move", {
        "caller": uniqueid, "queue": "nowhere"})).message
    assert "no longer waiting" in (await actions.run(ALICE, "move", {
        "caller": "1.2", "queue": "supervisor"})).message
    outcome = await actions.run(ALICE, "move", {"caller": uniqueid, "queue": "supervisor"})
    assert outcome.ok, outcome.message
    assert ami.sent == [("QueueWithdrawCaller", [("Queue", "inbound"),
                                                 ("Caller", "PJSIP/caller-0000000b"),
                                                 ("WithdrawInfo", "supervisor")])]


@pytest_twisted.ensureDeferred
async def test_tickets_assign_resolve_close_by_the_supervisor(setup):
    actions, _, _, _, _, handled = setup
    ticket = await handled.complaints.open(number="13800138000", queue="complaint",
                                           category="billing", agent="1001")
    assert "owner" in (await actions.run(ALICE, "assign", {"ticket": ticket.id,
                                                           "owner": "<b>x</b>"})).message
    assert (await actions.run(ALICE, "assign", {"ticket": ticket.id, "owner": "sup.li"})).ok
    assert (await actions.run(ALICE, "resolve", {"ticket": ticket.id,
                                                 "outcome": "refund issued"})).ok
    closed = await actions.run(ALICE, "close", {"ticket": ticket.id})
    assert closed.ok and "closed" in closed.message
    stored = await handled.complaints.store.get(ticket.id)
    assert (stored.owner, stored.state, stored.outcome) == ("sup.li", "closed", "refund issued")
    assert any(h.get("by") == "alice" for h in stored.history)
    assert "no such ticket" in (await actions.run(ALICE, "close", {"ticket": "999999"})).message


@pytest_twisted.ensureDeferred
async def test_without_asterisk_the_ami_actions_are_refused(setup):
    actions, ami, staff, *_ = setup
    await logged_in(staff)
    ami.connected = False
    outcome = await actions.run(ALICE, "pause", {"agent": "1001", "reason": "1"})
    assert not outcome.ok and "not connected" in outcome.message
    assert ami.sent == []
