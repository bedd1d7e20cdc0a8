"""Originate success, failure and reconnect, at the AMI protocol level, with a real Redis.

AMI formats: tests/fixtures/ami/ami5_originate.ami.txt (+ .c1.raw), a copy of
../shared/asterisk/transcripts2/ami5_originate (Asterisk 22.10.1): #1 Local/... Async with
ChannelId -> `Originate successfully queued` + OriginateResponse Success Reason 4 and
`Uniqueid` = ChannelId; #2 no such extension -> Reason 0; #3 synchronous -> `Response: Error`;
#5 no SIP answer and #6 ringing out -> Reason 3. The responses and events are replayed with the
ActionID and ChannelId the engine used.
CoreShowChannels is not in a capture: its list follows the Asterisk 22 documentation
(docs.asterisk.org, AMI_Events/CoreShowChannel and CoreShowChannelsComplete: `Uniqueid`,
`ChannelState`, `EventList: Complete`) and the generic list acknowledgement
`Response: Success / EventList: start`.
"""
from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred

from ccengine.ami.wire import Message
from ccengine.outbound.dialler import CHANNEL_ID_RE
from outbound_helpers import Rig, channels_list, recorded, retarget

NOW_PLUS_10_MIN = 600


def written_originate(rig: Rig) -> Message:
    actions = [m for m in rig.harness.written() if m.get("Action") == "Originate"]
    assert len(actions) == 1
    return actions[0]


async def start_dial(rig: Rig, kind="survey"):
    job = await rig.claimed_job(kind)
    d = ensureDeferred(rig.dialler.dial(job, None, "inbound"))
    await rig.ami.sent
    originate = written_originate(rig)
    return job, d, originate


def originate_response(lab_action_id: str, originate: Message) -> Message:
    return retarget(recorded(lab_action_id, "OriginateResponse"), ActionID=originate.action_id,
                    Uniqueid=originate["ChannelId"])


@pytest_twisted.ensureDeferred
async def test_originate_success_answered_once(redis_url):
    """ami5 #1: queued, then OriginateResponse Success Reason 4 for our ChannelId -> the job is
    done, one attempt `answered` recorded and counted, exactly one Originate written."""
    rig = Rig(redis_url)
    job, d, originate = await start_dial(rig)
    assert originate["Channel"] == "Local/13800000001@ccengine-outbound/n"
    assert (originate["Context"], originate["Exten"], originate["Async"]) == (
        "ccengine-survey", "s", "true")
    assert CHANNEL_ID_RE.match(originate["ChannelId"])
    assert originate.getall("Variable") == ["CCENGINE_JOB=sv-1", "CCENGINE_QUEUE=inbound"]
    rig.harness.answer(recorded("orig-ok"))
    assert await d == ("ok", 0.0)
    rig.harness.receive([originate_response("orig-ok", originate)])
    await rig.settle()
    stored = await rig.jobs.get(job.id)
    assert (stored.state, stored.attempts, stored.last_outcome) == ("done", 1, "answered")
    attempts = await rig.jobs.attempts(job.id)
    assert [a["outcome"] for a in attempts] == ["answered"]
    assert attempts[0]["channel_id"] == originate["ChannelId"]
    assert rig.sample("ccengine_outbound_attempts_total", kind="survey", outcome="answered") == 1
    assert rig.finals == [("sv-1", "done")]
    assert rig.ami.originates() == 1
    assert await rig.jobs.inflight() == {}
    await rig.conn.close()


@pytest.mark.parametrize("lab_id, outcome", [("orig-noext", "failed"),
                                              ("orig-noendpoint", "failed"),
                                              ("orig-agentdown", "no_answer"),
                                              ("orig-noanswer", "no_answer")])
@pytest_twisted.ensureDeferred
async def test_originate_failure_schedules_a_retry(redis_url, lab_id, outcome):
    """ami5 #2/#4 (Reason 0) and #5/#6 (Reason 3): the attempt is recorded with its outcome and
    the job waits retry_minutes[0] = 10 minutes; nothing is re-dialled meanwhile."""
    rig = Rig(redis_url)
    job, d, originate = await start_dial(rig)
    rig.harness.answer(recorded(lab_id))
    await d
    now = rig.clock.seconds()
    rig.harness.receive([originate_response(lab_id, originate)])
    await rig.settle()
    stored = await rig.jobs.get(job.id)
    assert (stored.state, stored.last_outcome) == ("waiting", outcome)
    assert stored.due == pytest.approx(now + NOW_PLUS_10_MIN, abs=0.01)
    assert rig.sample("ccengine_outbound_attempts_total", kind="survey", outcome=outcome) == 1
    assert await rig.jobs.claim("survey", now + 599, 120) is None
    assert rig.ami.originates() == 1
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_synchronous_error_response_is_a_failed_attempt(redis_url):
    """ami5 #3: `Response: Error / Originate failed` -> a failed attempt, no second Originate."""
    rig = Rig(redis_url)
    job, d, originate = await start_dial(rig)
    rig.harness.answer(recorded("orig-noext-sync"))
    assert await d == ("ok", 0.0)
    stored = await rig.jobs.get(job.id)
    assert (stored.state, stored.last_outcome, stored.attempts) == ("waiting", "failed", 1)
    assert rig.ami.originates() == 1
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_duplicate_originate_response_is_counted_once(redis_url):
    """The same OriginateResponse delivered twice finishes the attempt once."""
    rig = Rig(redis_url)
    job, d, originate = await start_dial(rig)
    rig.harness.answer(recorded("orig-ok"))
    await d
    event = originate_response("orig-ok", originate)
    rig.harness.receive([event, event])
    await rig.settle()
    assert rig.sample("ccengine_outbound_attempts_total", kind="survey", outcome="answered") == 1
    assert len(await rig.jobs.attempts(job.id)) == 1
    await rig.conn.close()


async def reconnect_and_check(rig: Rig, *channels) -> dict:
    rig.harness.close()
    rig.clock.advance(0.5)                       # backoff_initial, jitter 0: new connection
    rig.harness.login()
    check = ensureDeferred(rig.dialler.check_inflight())
    await rig.ami.sent
    listing = [m for m in rig.harness.written() if m.get("Action") == "CoreShowChannels"][-1]
    rig.harness.receive(channels_list(listing.action_id, *channels))
    return await check


async def dial_then_drop(rig: Rig):
    """Originate written and queued, then the connection drops before the OriginateResponse."""
    job, d, originate = await start_dial(rig)
    rig.harness.answer(recorded("orig-ok"))
    await d
    return job, originate["ChannelId"]


@pytest_twisted.ensureDeferred
async def test_reconnect_with_the_call_up_finishes_answered_without_a_new_originate(redis_url):
    """Connection lost between Originate and OriginateResponse; after the reconnect the
    ChannelId is listed Up (ChannelState 6): answered, exactly one call."""
    rig = Rig(redis_url)
    job, channel_id = await dial_then_drop(rig)
    verdicts = await reconnect_and_check(rig, (channel_id, "6"), (f"{channel_id};2", "6"))
    assert verdicts == {channel_id: "answered"}
    assert (await rig.jobs.get(job.id)).state == "done"
    assert rig.ami.originates() == 1
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_reconnect_while_ringing_waits_for_the_response_on_the_new_connection(redis_url):
    """The ChannelId is still ringing after the reconnect: nothing is decided or re-sent; the
    OriginateResponse that then arrives (Reason 3) is matched by its Uniqueid."""
    rig = Rig(redis_url)
    job, channel_id = await dial_then_drop(rig)
    assert await reconnect_and_check(rig, (channel_id, "5")) == {channel_id: "waiting"}
    assert (await rig.jobs.get(job.id)).state == "dialling"
    late = retarget(recorded("orig-noanswer", "OriginateResponse"), ActionID="cc1-9",
                    Uniqueid=channel_id)
    rig.harness.receive([late])
    await rig.settle()
    assert (await rig.jobs.get(job.id)).last_outcome == "no_answer"
    assert rig.ami.originates() == 1
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_reconnect_with_the_channel_gone_records_unknown_and_backs_off(redis_url):
    """The ChannelId is not listed any more: the attempt is recorded as `unknown` and the job
    waits the normal back-off; no second Originate is sent."""
    rig = Rig(redis_url)
    job, channel_id = await dial_then_drop(rig)
    now = rig.clock.seconds()
    assert await reconnect_and_check(rig) == {channel_id: "gone"}
    stored = await rig.jobs.get(job.id)
    assert (stored.state, stored.last_outcome) == ("waiting", "unknown")
    assert stored.due >= now + NOW_PLUS_10_MIN - 1
    assert rig.ami.originates() == 1
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_drop_before_the_queued_response_is_unsure_and_checked_not_resent(redis_url):
    """The connection drops before even `Originate successfully queued`: the dial is
    `unsure` (it may have been sent), and after the reconnect only a channel check is sent."""
    rig = Rig(redis_url)
    job, d, originate = await start_dial(rig)
    rig.harness.close()
    assert await d == ("unsure", 0.0)
    assert await reconnect_and_check(rig, (originate["ChannelId"], "6")) == {
        originate["ChannelId"]: "answered"}
    assert rig.ami.originates() == 1
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_a_programming_error_around_originate_is_not_taken_for_an_unsure_dial(redis_url):
    """Only a lost connection or an action timeout make a dial `unsure` (it may have been
    sent). A bug raising anything else propagates instead of being logged as "unconfirmed
    Originate" and retried for ever (issue 18)."""
    import pytest

    rig = Rig(redis_url)
    job = await rig.claimed_job("survey")

    async def broken(*args, **kwargs):
        raise TypeError("a bug in the action's fields")
    rig.dialler.ami.send_action = broken
    with pytest.raises(TypeError):
        await rig.dialler.dial(job, None, "inbound")
    await rig.conn.close()
