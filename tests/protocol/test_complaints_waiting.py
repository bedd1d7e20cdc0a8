"""Complainants waiting too long move to the supervisor queue with their priority: the queue
picture holds the recorded QueueStatus list of ami6_queue_priority_withdraw (two callers
waiting, priorities 10 and 0), QueueWithdrawCaller answered as recorded there; Setvar's answer `Variable Set` is
manager.c's action_setvar (astman_send_ack(s, m, "Variable Set")), not captured."""
import pytest_twisted
from prometheus_client import CollectorRegistry

from ami_replay import ClientHarness, received_messages, retag
from ccengine.ami.wire import Message
from ccengine.complaints.metrics import ComplaintMetrics
from ccengine.complaints.waiting import WaitingComplainants
from ccengine.queues.picture import QueuePicture
from ccengine.store.base import RedisConnection

CAPTURE = "ami6_queue_priority_withdraw"


def queue_status_reply():
    return [m for m in received_messages(CAPTURE, "c1") if m.action_id == "c1-4"]


def auto_answer(harness):
    withdraw = next(m for m in received_messages(CAPTURE, "c1")
                    if m.get("Message") == "Withdraw requested successfully")
    setvar = Message([("Response", "Success"), ("ActionID", "x"), ("Message", "Variable Set")])
    replies = {"queuewithdrawcaller": [withdraw], "setvar": [setvar]}
    transport = harness.transport
    original = transport.write

    def write(data):
        original(data)
        for block in data.split(b"\r\n\r\n"):
            if block:
                action = Message.parse(block)
                reply = replies.get(action["Action"].lower())
                if reply:
                    harness.receive([retag(m, action.action_id) if m.action_id else m
                                     for m in reply])
    transport.write = write


def make(redis_url, wait_limit=3):
    """The mover on a queue picture holding ami6's recorded QueueStatus answer (what the
    queue feed's resync after a login gives it)."""
    harness = ClientHarness()
    harness.login()
    auto_answer(harness)
    conn = RedisConnection(redis_url)
    registry = CollectorRegistry()
    picture = QueuePicture(harness.clock)
    picture.replace(queue_status_reply())
    mover = WaitingComplainants(conn, harness.client, picture, harness.clock,
                                ComplaintMetrics(registry), queue="inbound",
                                target_queue="supervisor", wait_limit=wait_limit, interval=15)
    return harness, mover, conn, registry


def actions(harness, name):
    return [m for m in harness.written() if m.get("Action") == name]


@pytest_twisted.ensureDeferred
async def test_caller_over_the_limit_is_withdrawn_to_supervisor_with_its_priority(redis_url):
    """Caller A (Wait 4 > limit 3, priority 0) gets CC_PRIORITY=0 and is withdrawn with
    WithdrawInfo=supervisor; caller B (Wait 2) stays; a second look moves nobody twice."""
    harness, mover, conn, registry = make(redis_url)
    assert await mover.check() == 1
    [setvar] = actions(harness, "Setvar")
    [withdraw] = actions(harness, "QueueWithdrawCaller")
    assert (setvar["Channel"], setvar["Variable"], setvar["Value"]) == (
        "PJSIP/caller-0000000a", "CC_PRIORITY", "0")
    assert (withdraw["Queue"], withdraw["Caller"], withdraw["WithdrawInfo"]) == (
        "inbound", "PJSIP/caller-0000000a", "supervisor")
    assert await mover.check() == 0
    assert len(actions(harness, "QueueWithdrawCaller")) == 1
    assert registry.get_sample_value("ccengine_complaint_waiting_moved_total",
                                     {"result": "moved"}) == 1
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_wait_counts_from_first_join_recorded_by_the_waiting_feature(redis_url):
    """Caller B re-entered the queue 2 s ago but first joined 200 s ago (cc:line:entry joined):
    it is moved too, keeping its priority 10."""
    harness, mover, conn, _ = make(redis_url, wait_limit=100)
    harness.clock.advance(10_000)
    mover.picture.replace(queue_status_reply())     # the picture as Asterisk shows it now
    await conn.call(lambda r: r.hset("cc:line:entry:inbound:cclab-1795366330.17",
                                     mapping={"joined": "9800", "priority": "10"}))
    assert await mover.check() == 1
    [setvar] = actions(harness, "Setvar")
    [withdraw] = actions(harness, "QueueWithdrawCaller")
    assert (setvar["Channel"], setvar["Value"], withdraw["Caller"]) == (
        "PJSIP/caller-0000000b", "10", "PJSIP/caller-0000000b")
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_nothing_happens_while_ami_is_down(redis_url):
    """Without an AMI connection the check does nothing and raises nothing."""
    harness, mover, conn, _ = make(redis_url)
    harness.close()
    assert await mover.check() == 0
    await conn.close()
