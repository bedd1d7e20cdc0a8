"""The outbound job queue and dialler service against a real redis-server (redis_url):
re-delivery after a dead worker, do-not-call at dial time, number checks, calling windows.
AMI replies are ami5_originate's (tests/fixtures/ami/), replayed through ClientHarness."""
from __future__ import annotations

import pytest
import pytest_twisted
import redis
from twisted.internet.defer import ensureDeferred

from outbound_helpers import channels_list, first_of

from ccengine.outbound.jobs import new_job
from ccengine.store import keys
from outbound_helpers import Rig, recorded


async def add(rig: Rig, job_id="sv-1", number="13800000001", kind="survey", tz="Asia/Shanghai"):
    assert await rig.jobs.add(new_job(job_id, kind, number, rig.clock.seconds(), tz,
                                      queue="inbound"))


async def round_with_one_originate(rig: Rig, service) -> None:
    """Run one service round that sends an Originate; answer it `queued` (ami5 #1)."""
    d = ensureDeferred(service.round())
    assert await first_of(rig.ami.sent, d) == 0, "the round ended without an Originate"
    rig.harness.answer(recorded("orig-ok"))
    await d


@pytest_twisted.ensureDeferred
async def test_worker_dying_after_the_claim_gets_the_job_redelivered_once_and_dialled_once(redis_url):
    """Worker A claims and dies before dialling; until the lease ends nobody dials; then the
    job is re-delivered once and dialled once; A's late BEGIN is refused (stale token)."""
    rig = Rig(redis_url)
    service = rig.service()
    await add(rig)
    dead = await rig.jobs.claim("survey", rig.clock.seconds(), rig.config.redelivery_seconds)
    assert dead is not None

    rig.clock.advance(rig.config.redelivery_seconds - 1)
    await service.round()
    assert rig.ami.originates() == 0                     # leased by the dead worker

    rig.clock.advance(2)
    await round_with_one_originate(rig, service)
    assert rig.ami.originates() == 1
    assert await rig.dialler.dial(dead, None, "inbound") == ("stale", 0.0)
    await service.round()
    # The dial's own lease ends without an OriginateResponse: the service asks Asterisk about
    # the ChannelId (still ringing here) instead of dialling again.
    rig.clock.advance(rig.config.originate_timeout + 31)
    d = ensureDeferred(service.round())
    assert await first_of(rig.ami.sent, d) == 0
    listing = [m for m in rig.harness.written() if m.get("Action") == "CoreShowChannels"][-1]
    channel_id = (await rig.jobs.get("sv-1")).channel_id
    rig.harness.receive(channels_list(listing.action_id, (channel_id, "5")))
    await d
    stored = await rig.jobs.get("sv-1")
    assert (stored.deliveries, stored.attempts, stored.state) == (2, 1, "dialling")
    assert rig.ami.originates() == 1
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_do_not_call_is_honoured_at_dial_time(redis_url):
    """A number put on cc:dnc after the job was queued is not dialled; the job is cancelled
    with a recorded `do_not_call` attempt."""
    rig = Rig(redis_url)
    service = rig.service()
    await add(rig)
    r = redis.Redis.from_url(redis_url)
    r.sadd(keys.DNC, "13800000001")
    await service.round()
    stored = await rig.jobs.get("sv-1")
    assert (stored.state, stored.last_outcome) == ("cancelled", "do_not_call")
    assert [a["outcome"] for a in await rig.jobs.attempts("sv-1")] == ["do_not_call"]
    assert rig.sample("ccengine_outbound_attempts_total", kind="survey",
                      outcome="do_not_call") == 1
    assert rig.ami.originates() == 0
    r.close()
    await rig.conn.close()


@pytest.mark.parametrize("number", ["+8613800000001", "0086138000000", "9001234567",
                                    "1234", "1" * 32])
@pytest_twisted.ensureDeferred
async def test_refused_numbers_never_reach_an_originate(redis_url, number):
    """International, premium, too short and too long numbers (waiting.numbers rules) end the
    job as `invalid_number` before any Originate."""
    rig = Rig(redis_url)
    service = rig.service()
    await add(rig, number=number)
    await service.round()
    stored = await rig.jobs.get("sv-1")
    assert (stored.state, stored.last_outcome) == ("failed", "invalid_number")
    assert rig.ami.originates() == 0
    await rig.conn.close()


@pytest.mark.parametrize("number", ["123&PJSIP/x", "1@trunk", "abc", "1" * 40])
def test_hostile_numbers_cannot_become_jobs(number):
    """Numbers with channel syntax, letters or 40 digits are refused when the job is built."""
    with pytest.raises(ValueError):
        new_job("sv-1", "survey", number, 0.0, "UTC")


@pytest_twisted.ensureDeferred
async def test_job_outside_the_customer_window_waits_for_the_next_opening(redis_url):
    """10:00 in Shanghai is 22:00 in New York: the New York job waits until 09:00 there and is
    counted outside the window; the Shanghai job is dialled."""
    rig = Rig(redis_url)
    service = rig.service()
    await add(rig, "sv-ny", "13800000002", tz="America/New_York")
    await add(rig, "sv-sh", "13800000003")
    await round_with_one_originate(rig, service)
    ny = await rig.jobs.get("sv-ny")
    assert ny.state == "waiting" and ny.due == rig.START + 11 * 3600   # 13:00 UTC
    assert rig.sample("ccengine_outbound_jobs_outside_window", kind="survey") == 1
    assert rig.sample("ccengine_outbound_jobs_waiting", kind="survey") == 1
    assert rig.ami.originates() == 1
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_global_rate_limit_holds_back_the_next_dial(redis_url):
    """max_calls_per_minute = 1: the second due job waits a minute, it is not dialled."""
    from ccengine.config import OutboundConfig
    rig = Rig(redis_url, OutboundConfig(max_calls_per_minute=1))
    service = rig.service()
    await add(rig, "sv-1", "13800000001")
    await add(rig, "sv-2", "13800000002")
    await round_with_one_originate(rig, service)
    assert rig.ami.originates() == 1
    second = await rig.jobs.get("sv-2")
    assert second.state == "waiting" and second.due == pytest.approx(rig.START + 60, abs=0.01)
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_per_number_interval_spaces_two_jobs_for_one_number(redis_url):
    """Two jobs for the same number: the second waits per_number_interval_minutes."""
    rig = Rig(redis_url)
    service = rig.service()
    await add(rig, "sv-1", "13800000001")
    await add(rig, "sv-2", "13800000001")
    await round_with_one_originate(rig, service)
    second = await rig.jobs.get("sv-2")
    assert second.state == "waiting"
    assert second.due == pytest.approx(rig.START + 3600, abs=1)
    assert rig.ami.originates() == 1
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_paused_kind_is_not_claimed(redis_url):
    """While `survey` (or `all`) is paused no survey job is claimed or dialled."""
    rig = Rig(redis_url)
    service = rig.service()
    await add(rig)
    r = redis.Redis.from_url(redis_url)
    r.sadd(keys.OUTBOUND_PAUSED, "all")
    await service.round()
    assert rig.ami.originates() == 0
    assert (await rig.jobs.get("sv-1")).state == "waiting"
    r.close()
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_complaint_followups_become_followup_jobs_once(redis_url):
    """A follow-up scheduled by complaints/followup.py (its real format) becomes one followup
    job with the ticket as origin and its not-before time; importing again adds nothing."""
    from ccengine.complaints.followup import FollowUpScheduler
    from ccengine.complaints.tickets import ComplaintTicket
    from ccengine.outbound.sources import Sources
    rig = Rig(redis_url)
    ticket = ComplaintTicket(id="42", number="13800000001", queue="complaint", state="resolved",
                             resolved_at=rig.clock.seconds())
    job_id = await FollowUpScheduler(rig.conn, rig.clock, 24).schedule(ticket)
    sources = Sources(rig.conn, rig.jobs, "Asia/Shanghai")
    assert await sources.import_followups(rig.clock.seconds()) == 1
    assert await sources.import_followups(rig.clock.seconds()) == 0
    job = await rig.jobs.get(job_id)
    assert (job.kind, job.origin, job.number, job.queue) == ("followup", "ticket:42",
                                                             "13800000001", "complaint")
    assert job.due == pytest.approx(rig.START + 24 * 3600, abs=0.01)
    await rig.conn.close()
