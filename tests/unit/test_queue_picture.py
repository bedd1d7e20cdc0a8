"""The one picture of Asterisk's queues (ccengine/queues/picture.py) from replayed captures
(tests/fixtures/ami/, copies of ../shared/asterisk/transcripts{,2}; tests/fixtures/asterisk_lab24):
members with their availability, and waiting callers with their positions."""
from __future__ import annotations

from pathlib import Path

from twisted.internet.task import Clock

import ami_replay
from ccengine.ami.wire import Message
from ccengine.queues.picture import QueuePicture

LAB24 = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk_lab24"


def picture_after(messages) -> QueuePicture:
    picture = QueuePicture(Clock())
    for message in messages:
        picture.apply(message)
    return picture


def test_staffing_from_queuestatus_and_pause_events():
    """ami9: QueueStatus lists shortq's three members with 1003 paused (2 staffing); the
    QueueMemberPause that unpauses 1003 makes 3; a pause makes 2 again; a member in use
    (Status 2) still staffs the queue but is not available to ring."""
    picture = QueuePicture(Clock())
    assert picture.staffing("shortq") is None                   # nothing known before a resync
    messages = ami_replay.events("ami9_pause_rna_incall", "QueueMember", "QueueMemberPause")
    status = [m for m in messages if m.event == "QueueMember"]
    pauses = [m for m in messages if m.event == "QueueMemberPause"]
    picture.replace(status[:3])
    assert picture.staffing("shortq") == 2
    paused = picture.members[("shortq", "PJSIP/1003")]
    assert (paused.name, paused.paused, paused.reason) == ("Agent 1003", True, "lunch")
    picture.apply(pauses[-1])
    assert (pauses[-1]["Paused"], picture.staffing("shortq")) == ("0", 3)
    picture.apply(pauses[0])
    assert (pauses[0]["Paused"], picture.staffing("shortq")) == ("1", 2)
    picture.replace(status[3:6])                                 # taken during the call
    assert status[4]["Status"] == "2"
    assert (picture.staffing("shortq"), picture.available("shortq")) == (2, 1)


def test_unknown_device_state_is_staffing_and_available_as_app_queue_rings_it():
    """Status 0 (AST_DEVICE_UNKNOWN) is rung by app_queue when not paused
    (apps/app_queue.c is_member_available()); the former waiting mirror counted it as not
    logged in while the agents' mirror counted it as idle. One answer now: staffing and
    available. 4 (invalid) and 5 (unavailable) are neither."""
    template = ami_replay.events("c_member_actions", "QueueMemberAdded")[0]
    picture = QueuePicture(Clock())
    picture.replace([])
    for status, interface in (("0", "PJSIP/1001"), ("4", "PJSIP/1002"), ("5", "PJSIP/1003")):
        picture.apply(Message([(k, {"Status": status, "Interface": interface,
                                    "Queue": "inbound"}.get(k, v)) for k, v in template.items()]))
    members = {m.interface: (m.staffing, m.available) for m in picture.queue_members("inbound")}
    assert members == {"PJSIP/1001": (True, True), "PJSIP/1002": (False, False),
                       "PJSIP/1003": (False, False)}
    assert (picture.staffing("inbound"), picture.available("inbound")) == (1, 1)


def test_member_fields_are_read_from_either_spelling():
    """Member events say MemberName/Interface, QueueStatus says Name/Location (AMI note 10):
    both give the same member."""
    added = ami_replay.events("c_member_actions", "QueueMemberAdded")[0]
    from_event = picture_after([added]).members[(added["Queue"], added["Interface"])]
    item = Message({"Event": "QueueMember", "Queue": added["Queue"], "Name": added["MemberName"],
                    "Location": added["Interface"], "Status": added["Status"], "Paused": "0",
                    "PausedReason": ""})
    picture = QueuePicture(Clock())
    picture.replace([item])
    assert picture.members[(added["Queue"], added["Interface"])] == from_event
    removed = ami_replay.events("c_member_actions", "QueueMemberRemoved")[0]
    picture.apply(removed)
    assert (removed["Queue"], removed["Interface"]) not in picture.members


def test_waiting_callers_from_queuestatus_entries():
    """d_queuestatus_waiting_caller: one caller in inbound at position 1, Wait 3 s, priority 0;
    ami6: two callers, the priority-10 one at position 1."""
    picture = QueuePicture(Clock())
    picture.clock.advance(1000)
    picture.replace(ami_replay.received_messages("d_queuestatus_waiting_caller"))
    caller, = picture.waiting("inbound")
    assert (caller.uniqueid, caller.position, caller.entered, caller.priority) == \
        ("cclab-1795364647.6", 1, 997, 0)
    entries = [m for m in ami_replay.received_messages("ami6_queue_priority_withdraw")
               if m.event == "QueueEntry" and m.action_id == "c1-4"]
    picture.replace(entries)
    assert [(c.position, c.priority) for c in picture.waiting("inbound")] == [(1, 10), (2, 0)]


def test_joins_and_leaves_of_a_real_run_keep_asterisks_positions():
    """lab24_engine_down_key2_fallback (our dialplans on Asterisk 22.10.1): A joins, B joins
    at 2, A leaves by its key and re-joins at 1: the picture's positions follow Asterisk's
    Position fields, and the listeners hear each change."""
    _, blocks = ami_replay.split_raw((LAB24 / "engine_down_key2_fallback.ami_stream.raw")
                                     .read_bytes())
    messages = [Message.parse(b) for b in blocks]
    joins = [m for m in messages if m.event == "QueueCallerJoin"]
    a, b = joins[0]["Uniqueid"], joins[1]["Uniqueid"]
    picture = QueuePicture(Clock())
    heard = []
    picture.listen(lambda kind, what: heard.append((kind, getattr(what, "uniqueid", None))))
    positions = []
    for message in messages:
        picture.apply(message)
        if message.event == "QueueCallerJoin":
            positions.append({c.uniqueid: c.position for c in picture.waiting("inbound")})
    assert positions == [{a: 1}, {a: 1, b: 2}, {a: 1, b: 2}]
    assert [h for h in heard if h[0].startswith("caller")][:4] == [
        ("caller_joined", a), ("caller_joined", b), ("caller_left", a), ("caller_joined", a)]
    assert picture.waiting("inbound") == []                      # both hung up at the end


def test_member_state_name_in_call_and_wrap_up_from_the_recorded_fields():
    """ami9's QueueStatus during a call: Agent 1002 is in use (Status 2, InCall 1, no call
    finished yet: no wrap-up); Agent 1001 is free and finished a call at LastCall 1795366450,
    so with its Wrapuptime 0 the queue's wrap-up (10 s here) runs to 1795366460."""
    status = [m for m in ami_replay.events("ami9_pause_rna_incall", "QueueMember")][3:6]
    picture = QueuePicture(Clock())
    picture.replace(status)
    members = {m.name: m for m in picture.queue_members("shortq")}
    busy, free = members["Agent 1002"], members["Agent 1001"]
    assert (busy.state, busy.in_call, busy.wrapup_until(10)) == ("in_use", True, 0.0)
    assert (free.state, free.in_call, free.last_call) == ("not_in_use", False, 1795366450.0)
    assert free.wrapup_until(10) == 1795366460.0
