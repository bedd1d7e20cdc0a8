"""Deadline sweeper against a real redis-server, time driven by task.Clock."""
import json

import pytest_twisted
import redis
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.task import Clock

from ccengine.ami.client import AmiNotConnected
from ccengine.ami.wire import Message
from ccengine.complaints.metrics import ComplaintMetrics
from ccengine.complaints.service import Complaints
from ccengine.complaints.store import TicketStore
from ccengine.complaints.sweeper import DeadlineSweeper
from ccengine.store.base import RedisConnection

HOURS = {"agent": 24, "supervisor": 48, "manager": 72}
H = 3600.0
START = 1_795_366_400.0


class RecordingAmi:
    """Stands in for AmiClient.send_action; answers like Asterisk does to UserEvent
    (ami4_login_ping_events: `Response: Success`, `Message: Event Sent`)."""

    def __init__(self):
        self.actions = []
        self.connected = True

    def send_action(self, name, **fields):
        if not self.connected:
            from twisted.internet.defer import fail
            return fail(AmiNotConnected("down"))
        self.actions.append((name, fields))
        return succeed(Message([("Response", "Success"), ("Message", "Event Sent")]))


def make(redis_url, clock=None, ami=None, batch=100):
    clock = clock or Clock()
    clock.advance(START)
    registry = CollectorRegistry()
    conn = RedisConnection(redis_url)
    complaints = Complaints(TicketStore(conn, HOURS), ComplaintMetrics(registry), clock, HOURS)
    sweeper = DeadlineSweeper(complaints, ami or RecordingAmi(), clock, 60.0, batch=batch)
    return sweeper, complaints, clock, registry, conn


def escalations(redis_url, ticket_id):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    events = [json.loads(h)["event"] for h in r.lrange(f"cc:complaint:history:{ticket_id}", 0, -1)]
    r.close()
    return events


@pytest_twisted.ensureDeferred
async def test_deadline_passing_escalates_and_notifies(redis_url):
    """A ticket past its agent deadline goes to supervisor once, with a CCTicketEscalated UserEvent."""
    sweeper, complaints, clock, registry, conn = make(redis_url)
    ticket = await complaints.open(number="13800000001", agent="1003")
    assert await sweeper.sweep() == 0
    clock.advance(24 * H - 1)
    assert await sweeper.sweep() == 0
    clock.advance(1)
    assert await sweeper.sweep() == 1
    assert await sweeper.sweep() == 0
    after = await complaints.store.get(ticket.id)
    assert (after.state, after.level, after.deadline) == ("escalated", "supervisor", START + 24 * H + 48 * H)
    assert sweeper.ami.actions == [("UserEvent", {
        "UserEvent": "CCTicketEscalated", "Ticket": ticket.id, "Level": "supervisor",
        "Reason": "overdue", "Deadline": str(int(START + 72 * H)), "ChainEnd": "0"})]
    assert registry.get_sample_value("ccengine_complaint_escalations_total",
                                     {"level": "supervisor", "reason": "overdue"}) == 1
    assert registry.get_sample_value("ccengine_complaint_tickets_open") == 1
    assert registry.get_sample_value("ccengine_complaint_tickets_overdue") == 0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_chain_end_keeps_manager_level_and_counts_once(redis_url):
    """Past the manager deadline the ticket stays at manager, is counted once and stays overdue."""
    sweeper, complaints, clock, registry, conn = make(redis_url)
    ticket = await complaints.open(agent="1003")
    for hours in (24, 48, 72, 72, 500):
        clock.advance(hours * H)
        await sweeper.sweep()
    after = await complaints.store.get(ticket.id)
    assert (after.level, after.chain_end, after.state) == ("manager", True, "escalated")
    assert escalations(redis_url, ticket.id) == ["opened", "escalated", "escalated", "chain_end"]
    assert registry.get_sample_value("ccengine_complaint_chain_end_total") == 1
    assert registry.get_sample_value("ccengine_complaint_tickets_overdue") == 1
    assert [f["ChainEnd"] for _, f in sweeper.ami.actions] == ["0", "0", "1"]
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_restart_mid_sweep_finishes_the_job_exactly_once(redis_url):
    """A sweeper stopped after one ticket leaves the rest to a new instance; every ticket goes up once."""
    first, complaints, clock, _, conn = make(redis_url, batch=1)
    ids = [(await complaints.open(agent="1003")).id for _ in range(5)]
    clock.advance(24 * H)
    first.ami.connected = False            # the crash also takes the notification step with it
    assert await first.sweep(max_batches=1) == 1
    second, _, _, registry2, conn2 = make(redis_url, clock=Clock())
    second.clock = clock
    second.complaints.clock = clock
    assert await second.sweep() == 4
    assert await second.sweep() == 0
    for ticket_id in ids:
        assert escalations(redis_url, ticket_id) == ["opened", "escalated"]
    # The notification of the ticket escalated before the crash was still in the outbox.
    assert sorted(f["Ticket"] for _, f in second.ami.actions) == sorted(ids)
    await conn.close()
    await conn2.close()


@pytest_twisted.ensureDeferred
async def test_two_sweepers_at_once_escalate_each_level_once(redis_url):
    """Two sweepers racing over the same Redis escalate every ticket exactly once."""
    a, complaints, clock, _, conn = make(redis_url)
    b, _, _, _, conn2 = make(redis_url, clock=Clock())
    b.clock = clock
    b.complaints.clock = clock
    ids = [(await complaints.open(agent="1003")).id for _ in range(8)]
    clock.advance(24 * H)
    done = await gatherResults([Deferred.fromCoroutine(s.sweep()) for s in (a, b)])
    assert sum(done) == 8
    for ticket_id in ids:
        assert escalations(redis_url, ticket_id) == ["opened", "escalated"]
    assert len(a.ami.actions) + len(b.ami.actions) == 8
    await conn.close()
    await conn2.close()


@pytest_twisted.ensureDeferred
async def test_resolved_ticket_is_not_escalated(redis_url):
    """A ticket resolved before its deadline is never swept."""
    sweeper, complaints, clock, registry, conn = make(redis_url)
    ticket = await complaints.open(agent="1003")
    await complaints.resolve(ticket.id, "refund", by="1003")
    clock.advance(1000 * H)
    assert await sweeper.sweep() == 0
    assert (await complaints.store.get(ticket.id)).state == "resolved"
    assert registry.get_sample_value("ccengine_complaint_tickets_open") == 0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_service_runs_on_the_clock(redis_url):
    """Started as a service, the sweeper runs every sweep_interval on the injected clock."""
    sweeper, complaints, clock, _, conn = make(redis_url)
    ticket = await complaints.open(agent="1003")
    clock.advance(24 * H)
    sweeper.startService()
    await sweeper.last_run                  # the first sweep runs at start
    assert (await complaints.store.get(ticket.id)).level == "supervisor"
    clock.advance(48 * H)                   # the loop's next run comes from the clock
    await sweeper.last_run
    sweeper.stopService()
    assert (await complaints.store.get(ticket.id)).level == "manager"
    await conn.close()
