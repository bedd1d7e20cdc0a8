"""Follow-up jobs for the outbound dialler, the follow-up AGI route, and repeat complainants,
against a real redis-server (AGI via the scripted Asterisk of tests/agi_harness.py)."""
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

from agi_harness import ScriptedAsterisk, agi_factory
from ccengine.complaints.followup import FollowUpRoute, FollowUpScheduler
from ccengine.complaints.metrics import ComplaintMetrics
from ccengine.complaints.repeat import RepeatComplainants
from ccengine.complaints.service import Complaints
from ccengine.complaints.store import TicketStore
from ccengine.store.base import RedisConnection

HOURS = {"agent": 24, "supervisor": 48, "manager": 72}
START = 1_795_366_400.0


class AskingPrompter:
    """Records prompts; `ask` returns the scripted keys one by one."""

    def __init__(self, keys):
        self.keys = list(keys)
        self.played = []

    async def ask(self, channel, name, lang, max_digits, timeout_ms, **values):
        self.played.append(name)
        return self.keys.pop(0) if self.keys else ""

    async def play(self, channel, name, lang, escape_digits="", **values):
        self.played.append(name)
        return ""


def make(redis_url):
    clock = Clock()
    clock.advance(START)
    conn = RedisConnection(redis_url)
    registry = CollectorRegistry()
    store = TicketStore(conn, HOURS)
    complaints = Complaints(store, ComplaintMetrics(registry), clock, HOURS,
                            FollowUpScheduler(conn, clock, 24))
    return complaints, clock, conn, registry


@pytest_twisted.ensureDeferred
async def test_resolve_enqueues_the_documented_followup_job(redis_url):
    """Resolving enqueues cc:outbound:followup:{job} and its id in cc:outbound:followups (docs/complaints.md)."""
    complaints, clock, conn, _ = make(redis_url)
    t = await complaints.open(number="13800000001", agent="2001", language="zh", queue="complaint")
    await complaints.resolve(t.id, "refund", by="2001")
    job_id = f"cf-{t.id}-{int(START)}"
    assert await conn.call(lambda r: r.zrange("cc:outbound:followups", 0, -1, withscores=True)) == [
        (job_id, START + 24 * 3600)]
    job = await conn.call(lambda r: r.hgetall(f"cc:outbound:followup:{job_id}"))
    assert {k: job[k] for k in ("kind", "ticket", "number", "language", "agi_script", "agi_args")} == {
        "kind": "complaint_followup", "ticket": t.id, "number": "13800000001", "language": "zh",
        "agi_script": "followup", "agi_args": t.id}
    await conn.close()


async def run_followup(complaints, ticket_id, keys):
    prompter = AskingPrompter(keys)
    factory, _, _ = agi_factory({"followup": FollowUpRoute(complaints, prompter)})
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("followup", args=(ticket_id,))
    await asterisk.finished
    return asterisk, prompter


@pytest_twisted.ensureDeferred
async def test_unsatisfied_followup_reopens_at_supervisor(redis_url):
    """Key 2 ('not satisfied') reopens the ticket as escalated at supervisor level."""
    complaints, clock, conn, registry = make(redis_url)
    t = await complaints.open(number="13800000001", agent="2001")
    await complaints.resolve(t.id, "explained")
    asterisk, prompter = await run_followup(complaints, t.id, ["2"])
    ticket = await complaints.store.get(t.id)
    assert (ticket.state, ticket.level, ticket.followup) == ("escalated", "supervisor", "unsatisfied")
    assert asterisk.variables["CC_ROUTE_OK"] == "1"
    assert prompter.played == ["complaint_followup_question", "complaint_followup_thanks"]
    assert registry.get_sample_value("ccengine_complaint_escalations_total",
                                     {"level": "supervisor", "reason": "followup"}) == 1
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_satisfied_followup_closes_and_no_answer_records_nothing(redis_url):
    """Key 1 closes the ticket; no valid key twice leaves another ticket resolved."""
    complaints, clock, conn, _ = make(redis_url)
    a = await complaints.open(number="13800000001", agent="2001")
    b = await complaints.open(number="13800000002", agent="2001")
    for t in (a, b):
        await complaints.resolve(t.id, "explained")
    await run_followup(complaints, a.id, ["1"])
    await run_followup(complaints, b.id, ["", "7"])
    assert (await complaints.store.get(a.id)).state == "closed"
    assert (await complaints.store.get(b.id)).state == "resolved"
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_repeat_complainant_found_while_open_and_within_days(redis_url):
    """check() returns the active ticket, a resolved one within repeat_days, then nothing."""
    complaints, clock, conn, registry = make(redis_url)
    repeat = RepeatComplainants(complaints.store, clock, 30, 5, "complaint", complaints.metrics)
    assert await repeat.check("13800000001") is None
    t = await complaints.open(number="13800000001", agent="2001")
    assert await repeat.check("13800000001") == t.id
    await complaints.resolve(t.id, "done")
    await complaints.close(t.id)
    clock.advance(29 * 86400)
    assert await repeat.check("13800000001") == t.id
    clock.advance(2 * 86400)
    assert await repeat.check("13800000001") is None
    assert await repeat.check("1380000\r\n0001") is None
    assert registry.get_sample_value("ccengine_complaint_repeat_callers_total") == 2
    await conn.close()
