"""Pure decisions of the agents feature: PIN hashing, member state from event fields, the
staffing guard and the resync plan (no sockets, no Redis)."""
from datetime import datetime
from zoneinfo import ZoneInfo

import ami_replay
from ccengine.agents.directory import (AgentSession, BadAgentValue, hash_pin, parse_queue_spec,
                                       verify_pin)
from ccengine.agents.resync import members_from_status, plan
from ccengine.agents.staffing import understaffed_queues
from ccengine.agents.state import MemberState, effective, from_member, interface_pattern
from ccengine.queues.picture import Member, member_from
from ccengine.config import QueueConfig

import pytest

PHONE = interface_pattern("PJSIP/{phone}")
MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_pin_is_stored_salted_and_verified():
    """The stored PIN is a salted PBKDF2 string: two hashes of one PIN differ, both verify,
    a wrong PIN or a malformed hash does not, and a non-digit PIN is refused."""
    a, b = hash_pin("4321", iterations=1000), hash_pin("4321", iterations=1000)
    assert a != b and "4321" not in a
    assert verify_pin("4321", a) and verify_pin("4321", b)
    assert not verify_pin("4322", a) and not verify_pin("4321", "garbage")
    with pytest.raises(BadAgentValue):
        hash_pin("12a4")


def test_queue_spec_parses_penalties_and_refuses_unknown_queues():
    """`inbound:0,complaint:2` gives penalties; an unconfigured queue is refused."""
    assert parse_queue_spec("inbound:0,complaint:2") == {"inbound": 0, "complaint": 2}
    with pytest.raises(BadAgentValue):
        parse_queue_spec("nosuch", {"inbound"})


def test_member_fields_give_paused_ringing_on_call_and_wrapup():
    """Paused wins with its reason and LastPause; Status 6 rings, 2 is on call, and back to 1
    after a call is wrap-up until wrapup_seconds passed (fields as in ami9's QueueMemberStatus)."""
    status = {m["Status"]: m for m in ami_replay.events("ami9_pause_rna_incall",
                                                        "QueueMemberStatus", connection="c1")}
    paused = ami_replay.events("ami9_pause_rna_incall", "QueueMemberPause", connection="c1")[0]
    assert from_member(member_from(paused), None, 5.0) == MemberState("paused", "lunch",
                                                                      1795366470.0)
    assert from_member(member_from(status["6"]), None, 5.0).state == "ringing"
    on_call = from_member(member_from(status["2"]), None, 5.0)
    assert on_call.state == "on_call"
    after = from_member(member_from(status["1"]), on_call, 7.0, wrapup_seconds=10)
    assert after == MemberState("wrapup", "", 7.0)
    assert effective(after, 16.9, 10) == "wrapup" and effective(after, 17.0, 10) == "idle"


def test_staffing_guard_counts_available_agents_in_open_queues():
    """Pausing the last available agent of an open queue with minimum 1 is refused; with a
    second idle agent, or when the queue is closed, it is allowed; paused agents don't count."""
    queues = {"inbound": QueueConfig(name="inbound", min_available_agents=1)}
    idle, paused = MemberState("idle"), MemberState("paused", "meal")
    alone = {"1023": {"inbound": idle}, "1024": {"inbound": paused}}
    assert understaffed_queues("1023", {"inbound": 0}, alone, queues, 0, MONDAY_10AM, 10) == ["inbound"]
    two = {"1023": {"inbound": idle}, "1024": {"inbound": idle}}
    assert understaffed_queues("1023", {"inbound": 0}, two, queues, 0, MONDAY_10AM, 10) == []
    night = MONDAY_10AM.replace(hour=23)
    assert understaffed_queues("1023", {"inbound": 0}, alone, queues, 0, night, 10) == []


def test_queuestatus_members_use_name_and_location():
    """QueueMember items of a recorded QueueStatus give queue, Name and Location (AMI note 10)."""
    members = members_from_status(ami_replay.received_messages("d_queuestatus_idle"))
    assert ("complaint", "Agent 1003", "PJSIP/1003") in {(m.queue, m.name, m.interface)
                                                         for m in members}


def test_plan_adds_missing_removes_stale_and_then_has_nothing_to_do():
    """The plan re-adds a login's missing member with its stored pause, removes a member of a
    logged-out agent, ignores static members, and is empty once applied."""
    session = AgentSession("1023", "1003", "PJSIP/1003", 0, {"inbound": 1})
    states = {"1023": {"inbound": MemberState("paused", "meal", 3.0)}}
    static = ami_replay.received_messages("d_queuestatus_idle")
    members = members_from_status(static) + [Member("inbound", "PJSIP/1004", "1024", "1", False)]
    todo = plan({"1023": session}, states, members, {"1023", "1024"}, PHONE, False, 9.0, 10)
    assert todo.adds == [("1023", "inbound", 1, True, "meal")]
    assert todo.removes == [("inbound", "PJSIP/1004")]
    assert todo.states == {"1023": {"inbound": MemberState("paused", "meal", 3.0)}}
    applied = members_from_status(static) + [Member("inbound", "PJSIP/1003", "1023", "1", True,
                                                    "meal", last_pause=3.0)]
    again = plan({"1023": session}, todo.states, applied, {"1023", "1024"}, PHONE, False, 9.0, 10)
    assert (again.adds, again.removes, again.pauses) == ([], [], [])
    assert again.states == todo.states
