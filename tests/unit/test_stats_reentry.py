"""Queue metrics of callers who leave and re-enter a queue: the hold loop of
dialplans/extensions_ccengine.conf ([ccengine-wait]: Queue() with a timeout, the queue-announce
AGI, Queue() again, same Uniqueid), QueueWithdrawCaller moves between queues, exits that become
final only when no re-join follows.

The events are recorded ones (tests/fixtures/ami/: b_abandoned's Join/Leave/Abandon/Hangup,
a_answered's AgentConnect, ami7's exit-context Join and Leave) moved in time or re-tagged, in the
order a real Queue() timeout has (tests/fixtures/asterisk_lab24/callback_after_30s: a
QueueCallerAbandon with the slice's HoldTime, QueueCallerLeave, then QUEUESTATUS; app_queue.c
`queue_exec`: `record_abandoned()`, `leave_queue()`, `set_queue_result()`). Every Queue() call
is a new queue entry whose HoldTime counts from its own join. The lab24 runs themselves are
replayed in tests/protocol/test_lab24_captures.py.
"""
from __future__ import annotations

import pytest

import ami_replay
from ccengine.ami.wire import Message
from test_stats_queue_events import B_JOIN, Rig, without

# --- the hold loop: Queue() with a timeout, announcement, Queue() again (same Uniqueid) -----------
# Each slice is the b_abandoned Join/Leave pair (its headers, its Uniqueid) moved in time.
B_UNIQUEID = "cclab-1795364610.3"
B_JOIN_EVENT, = ami_replay.events("b_abandoned", "QueueCallerJoin")
B_LEAVE_EVENT, = ami_replay.events("b_abandoned", "QueueCallerLeave")
B_ABANDON_EVENT, = ami_replay.events("b_abandoned", "QueueCallerAbandon")
B_HANGUP_EVENT = [m for m in ami_replay.events("b_abandoned", "Hangup")
                  if m.get("Uniqueid") == B_UNIQUEID][-1]
A_CONNECT_EVENT, = ami_replay.events("a_answered", "AgentConnect")


def tagged(message: Message, **headers: str) -> Message:
    """A recorded event with some header values replaced (Timestamp, Queue, Uniqueid, ...)."""
    return Message([(k, headers.get(k, v)) for k, v in message.items()])


def timeout_status(uniqueid: str) -> Message:
    return Message({"Event": "VarSet", "Uniqueid": uniqueid, "Variable": "QUEUESTATUS",
                    "Value": "TIMEOUT"})


def hold_slices(count: int, every: float = 45.0, queue: str = "complaint") -> list[Message]:
    """`count` slices of 30 s in queue, each ended as Asterisk ends a Queue() timeout: Abandon
    (HoldTime 30), Leave, QUEUESTATUS=TIMEOUT; then an announcement of 15 s."""
    out = []
    for n in range(count):
        start = B_JOIN + n * every
        out += [tagged(B_JOIN_EVENT, Timestamp=f"{start:.6f}", Queue=queue),
                tagged(B_ABANDON_EVENT, Timestamp=f"{start + 30:.6f}", Queue=queue,
                       HoldTime="30"),
                tagged(B_LEAVE_EVENT, Timestamp=f"{start + 30:.6f}", Queue=queue),
                timeout_status(B_UNIQUEID)]
    return out


def answered_at(seconds_after_first_join: float, hold_time: int, queue: str = "complaint"):
    at = f"{B_JOIN + seconds_after_first_join:.6f}"
    return [tagged(B_JOIN_EVENT, Timestamp=f"{B_JOIN + seconds_after_first_join - hold_time:.6f}",
                   Queue=queue),
            tagged(B_LEAVE_EVENT, Timestamp=at, Queue=queue),
            tagged(A_CONNECT_EVENT, Timestamp=at, Queue=queue, Uniqueid=B_UNIQUEID,
                   HoldTime=str(hold_time))]


def test_queuestatus_timeout_varset_classifies_the_exit():
    """A Leave followed by VarSet QUEUESTATUS=TIMEOUT exits `timeout` when no re-join and no
    hang-up follow within leave_grace (the channel went on elsewhere in the dialplan).

    No capture has a queue timeout; the order (QueueCallerLeave, then QUEUESTATUS) is app_queue.c
    `queue_exec` (`leave_queue(&qe)` then `set_queue_result(chan, reason)`), and TIMEOUT is one of
    the QUEUESTATUS values documented for Queue(). The events are the b_abandoned ones with the
    Abandon removed and a VarSet built like the capture's VarSet events after the Leave.
    """
    rig = Rig()
    recorded = [m for m in ami_replay.events("b_abandoned") if m.event != "QueueCallerAbandon"]
    leave = next(i for i, m in enumerate(recorded) if m.event == "QueueCallerLeave")
    rig.replay(recorded[:leave + 1] + [timeout_status(B_UNIQUEID)])
    assert rig.value("ccengine_queue_exits_total", queue="complaint", reason="timeout") == 0
    rig.replay(m for m in recorded[leave + 1:] if m.event != "Hangup")
    rig.clock.advance(rig.stats.consumer.leave_grace)
    rig.stats.consumer.expire()
    assert rig.value("ccengine_queue_exits_total", queue="complaint", reason="timeout") == 1
    assert rig.value("ccengine_queue_abandoned_total", queue="complaint") == 0
    assert rig.stats.consumer.tracked == 0


def test_leave_without_known_exit_becomes_other_after_grace():
    """Without VarSet nor Hangup, a Leave is counted as `other` only after leave_grace (60 s)."""
    rig = Rig()
    rig.replay(m for m in ami_replay.events("b_abandoned")
               if m.event not in ("QueueCallerAbandon", "Hangup"))
    assert rig.stats.consumer.leave_grace == 60
    rig.clock.advance(59)
    rig.stats.consumer.expire()
    assert rig.value("ccengine_queue_exits_total", queue="complaint", reason="other") == 0
    rig.clock.advance(1)
    rig.stats.consumer.expire()
    assert rig.value("ccengine_queue_exits_total", queue="complaint", reason="other") == 1
    assert rig.stats.consumer.tracked == 0


def test_hold_loop_reentries_are_one_offer_answered_after_the_whole_wait():
    """Three slices then an answer 2 s into the fourth: offered once, answer time 137 s from the first join."""
    rig = Rig()
    rig.replay(hold_slices(3) + answered_at(137, 2))
    q = {"queue": "complaint"}
    assert rig.value("ccengine_queue_offered_total", **q) == 1
    assert rig.value("ccengine_queue_answered_total", **q) == 1
    assert rig.value("ccengine_queue_answer_time_seconds_sum", **q) == pytest.approx(137)
    assert rig.value("ccengine_queue_answered_within_sl_total", **q) == 0
    assert rig.value("ccengine_queue_exits_total", reason="answered", **q) == 1
    assert rig.value("ccengine_queue_exits_total", reason="timeout", **q) == 0
    assert rig.stats.consumer.tracked == 0


def test_hold_loop_abandon_measures_from_the_first_join():
    """An abandon 8 s into the third slice is one abandon after 98 s (HoldTime says 8), no timeout exit."""
    rig = Rig()
    at = f"{B_JOIN + 98:.6f}"
    rig.replay(hold_slices(2) + [
        tagged(B_JOIN_EVENT, Timestamp=f"{B_JOIN + 90:.6f}"),
        tagged(B_ABANDON_EVENT, Timestamp=at, HoldTime="8"),
        tagged(B_LEAVE_EVENT, Timestamp=at), B_HANGUP_EVENT])
    q = {"queue": "complaint"}
    assert rig.value("ccengine_queue_offered_total", **q) == 1
    assert rig.value("ccengine_queue_abandoned_total", **q) == 1
    assert rig.value("ccengine_queue_abandon_wait_seconds_sum", **q) == pytest.approx(98)
    assert rig.value("ccengine_queue_short_abandoned_total", **q) == 0
    assert rig.value("ccengine_queue_exits_total", reason="abandon", **q) == 1
    assert rig.value("ccengine_queue_exits_total", reason="timeout", **q) == 0
    assert rig.stats.consumer.tracked == 0


def test_hold_loop_without_timestamps_adds_the_earlier_slices_by_the_engine_clock():
    """timestampevents off: answer time = HoldTime of the last slice + engine time since the first join."""
    rig = Rig()
    first, second = hold_slices(1), answered_at(47, 2)
    rig.replay(without(m, "Timestamp") for m in first)
    rig.clock.advance(45)
    rig.replay(without(m, "Timestamp") for m in second)
    assert rig.value("ccengine_queue_offered_total", queue="complaint") == 1
    assert rig.value("ccengine_queue_answer_time_seconds_sum", queue="complaint") == 47


def test_caller_hanging_up_in_the_announcement_abandoned_after_the_whole_wait():
    """Between slices nothing is counted; a Hangup during the announcement is an abandon whose
    wait runs from the first join to the Hangup (issue 24: abandonment counts every
    announcement of the hold loop)."""
    rig = Rig()
    rig.replay(hold_slices(2))
    q = {"queue": "complaint"}
    assert sum(rig.value("ccengine_queue_exits_total", reason=r, **q)
               for r in ("timeout", "other", "abandon")) == 0
    hangup_at = B_JOIN + 45 + 30 + 7
    rig.replay([tagged(B_HANGUP_EVENT, Timestamp=f"{hangup_at:.6f}")])
    assert rig.value("ccengine_queue_exits_total", reason="abandon", **q) == 1
    assert rig.value("ccengine_queue_abandoned_total", **q) == 1
    assert rig.value("ccengine_queue_abandon_wait_seconds_sum", **q) == pytest.approx(82.0)
    assert rig.value("ccengine_queue_offered_total", **q) == 1
    assert rig.stats.consumer.tracked == 0


def test_caller_who_took_a_callback_is_not_an_abandon():
    """The waiting feature reports the stored callback; the Hangup after the goodbye ends the
    stay as `callback`."""
    rig = Rig()
    rig.replay(hold_slices(1))
    rig.stats.consumer.callback_taken(B_UNIQUEID)
    rig.replay([B_HANGUP_EVENT])
    q = {"queue": "complaint"}
    assert rig.value("ccengine_queue_exits_total", reason="callback", **q) == 1
    assert rig.value("ccengine_queue_abandoned_total", **q) == 0


def test_exit_with_key_then_back_into_the_queue_is_no_exit():
    """ami7: after pressing 2 the caller declines the callback and re-joins: one offer, no exitkey."""
    rig = Rig()
    recorded = ami_replay.events("ami7_queue_exit_context")
    join = next(m for m in recorded if m.event == "QueueCallerJoin")
    leave = next(i for i, m in enumerate(recorded) if m.event == "QueueCallerLeave")
    rig.replay(recorded[:leave + 1] + [join])
    assert rig.value("ccengine_queue_offered_total", queue="exitq") == 1
    assert rig.value("ccengine_queue_exits_total", queue="exitq", reason="exitkey") == 0
    assert rig.stats.consumer.tracked == 1


def withdraw_to(info: str | None, queue: str = "complaint") -> list[Message]:
    """QueueWithdrawCaller as in ami6: Abandon, VarSet QUEUE_WITHDRAW_INFO, Leave, QUEUESTATUS."""
    at = f"{B_JOIN + 100:.6f}"
    events = [tagged(B_JOIN_EVENT, Queue=queue),
              tagged(B_ABANDON_EVENT, Timestamp=at, HoldTime="100", Queue=queue)]
    if info is not None:
        events.append(Message({"Event": "VarSet", "Uniqueid": B_UNIQUEID,
                               "Variable": "QUEUE_WITHDRAW_INFO", "Value": info}))
    events.append(tagged(B_LEAVE_EVENT, Timestamp=at, Queue=queue))
    if info is not None:
        events.append(Message({"Event": "VarSet", "Uniqueid": B_UNIQUEID,
                               "Variable": "QUEUESTATUS", "Value": "WITHDRAW"}))
    return events


@pytest.mark.parametrize("info", ["supervisor", None], ids=["varset", "no-dialplan-class"])
def test_complaint_to_supervisor_is_a_withdraw_exit_and_a_new_offer(info):
    """A complainant withdrawn to supervisor exits complaint `withdraw` and is offered to supervisor,
    waiting from the supervisor join (3 s), with or without the VarSet events."""
    rig = Rig()
    rig.replay(withdraw_to(info) + answered_at(103, 3, queue="supervisor"))
    c, s = {"queue": "complaint"}, {"queue": "supervisor"}
    assert rig.value("ccengine_queue_offered_total", **c) == 1
    assert rig.value("ccengine_queue_exits_total", reason="withdraw", **c) == 1
    assert rig.value("ccengine_queue_abandoned_total", **c) == 0
    assert rig.value("ccengine_queue_offered_total", **s) == 1
    assert rig.value("ccengine_queue_answered_total", **s) == 1
    assert rig.value("ccengine_queue_answer_time_seconds_sum", **s) == pytest.approx(3)
    assert rig.stats.consumer.tracked == 0


def test_withdraw_back_into_the_same_queue_continues_the_wait():
    """WithdrawInfo `announce` (the dialplan re-queues the caller): one offer, no exit, wait from the first join."""
    rig = Rig()
    rig.replay(withdraw_to("announce") + answered_at(112, 2))
    q = {"queue": "complaint"}
    assert rig.value("ccengine_queue_offered_total", **q) == 1
    assert rig.value("ccengine_queue_exits_total", reason="withdraw", **q) == 0
    assert rig.value("ccengine_queue_abandoned_total", **q) == 0
    assert rig.value("ccengine_queue_answer_time_seconds_sum", **q) == pytest.approx(112)


def test_callers_between_slices_are_bounded():
    """Callers who leave and never come back nor hang up are evicted past max_tracked, their exit counted."""
    rig = Rig(max_tracked=3)
    for n in range(5):
        rig.replay(tagged(m, Uniqueid=f"x-{n}") for m in hold_slices(1))
    assert rig.stats.consumer.tracked == 3
    assert rig.value("ccengine_queue_exits_total", queue="complaint", reason="timeout") == 2
    assert rig.value("ccengine_queue_offered_total", queue="complaint") == 5
