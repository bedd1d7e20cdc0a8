"""Agent state from replayed AMI events (tests/fixtures/ami, copies of ../shared/asterisk):
the events go through the real AmiClient's dispatch into the agents feature; Redis is real.

Agents are logged in on the captured phones (PJSIP/1001 ... 1005) under agent numbers 20xx:
the tracker finds the agent by the member's Interface, so the recorded events apply unchanged.
"""
import pytest_twisted

import ami_replay
from agents_lab import AgentsLab, normalise
from ccengine.agents.directory import AgentDirectory, AgentRecord, AgentSession, hash_pin
from ccengine.agents.state import AgentStateStore


async def lab_with_phones(redis_url, phones, queues):
    lab = AgentsLab(redis_url)
    directory = AgentDirectory(lab.conn)
    for phone in phones:
        number = "20" + phone[-2:]
        await directory.put(AgentRecord(number, queues, ("en",), "", hash_pin("1234", iterations=1000)))
        assert await directory.claim(AgentSession(number, phone, f"PJSIP/{phone}", 0.0, queues)) == "ok"
        for queue in queues:   # members as Asterisk has them (the replayed events are for them)
            lab.queues.members[(queue, f"PJSIP/{phone}")] = {
                "Name": number, "Paused": "0", "PausedReason": "", "Penalty": "0"}
    store = AgentStateStore(lab.conn)
    seen = []
    original = lab.feature.states.put

    def spy(number, queue, ms):
        seen.append((number, queue, ms.state, ms.reason))
        return original(number, queue, ms)
    lab.feature.states.put = spy
    return lab, store, seen


async def replay(lab, messages):
    ami_replay.feed_client(lab.harness.client, messages)
    await lab.feature.events.drained()


def states_of(states):
    return {q: (s.state, s.reason) for q, s in states.items()}


@pytest_twisted.ensureDeferred
async def test_answered_call_rings_connects_and_wraps_up(redis_url):
    """a_answered (ringall complaint): 1003 rings, is on call, then in wrap-up after
    AgentComplete for agents.wrapup_seconds; 1004 rings and goes back to idle when cancelled."""
    lab, store, seen = await lab_with_phones(redis_url, ["1003", "1004"], {"complaint": 0})
    await replay(lab, ami_replay.events("a_answered"))
    assert [s for s in seen if s[0] == "2003"] == [
        ("2003", "complaint", "ringing", ""), ("2003", "complaint", "on_call", ""),
        ("2003", "complaint", "wrapup", "")]
    assert [s[2] for s in seen if s[0] == "2004"] == ["ringing", "idle"]
    assert states_of(await store.get("2003")) == {"complaint": ("wrapup", "")}
    assert lab.sample("ccengine_agents", queue="complaint", state="wrapup") == 1
    lab.clock.advance(lab.config.agents.wrapup_seconds)
    assert lab.sample("ccengine_agents", queue="complaint", state="wrapup") == 0
    assert lab.sample("ccengine_agents", queue="complaint", state="idle") == 2
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_ami9_pause_ring_no_answer_and_call(redis_url):
    """ami9_pause_rna_incall: 1003 paused 'lunch' then unpaused; 1001 rings and, after
    AgentRingNoAnswer, is idle again; 1002 rings, is on call, then in wrap-up."""
    queues = {"shortq": 0, "inbound": 0}
    lab, store, seen = await lab_with_phones(redis_url, ["1001", "1002", "1003"], queues)
    events = ami_replay.events("ami9_pause_rna_incall", connection="c1")
    first_unpause = max(i for i, m in enumerate(events) if m.event == "QueueMemberPause")
    await replay(lab, events[:first_unpause])
    assert states_of(await store.get("2003")) == {"shortq": ("paused", "lunch")}
    assert states_of(await store.get("2001"))["shortq"] == ("idle", "")
    assert [s[2] for s in seen if s[:2] == ("2001", "shortq")] == ["ringing", "idle"]
    assert [s[2] for s in seen if s[:2] == ("2002", "shortq")] == ["ringing", "on_call", "wrapup"]
    await replay(lab, events[first_unpause:])
    assert states_of(await store.get("2003")) == {"shortq": ("idle", "")}
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_no_answer_limit_pauses_the_agent_with_the_configured_reason(redis_url):
    """Three AgentRingNoAnswer in a row (ami9's ring-no-answer of 1001, replayed three times)
    pause the phone in all queues with reason 'no answer', visible in the state and metrics;
    two in a row do not."""
    lab, store, seen = await lab_with_phones(redis_url, ["1001"], {"shortq": 0, "inbound": 0})
    rna = [m for m in ami_replay.events("ami9_pause_rna_incall", "AgentCalled",
                                        "QueueMemberStatus", "AgentRingNoAnswer", connection="c1")
           if m.get("Interface") == "PJSIP/1001"]
    assert [m.event for m in rna].count("AgentRingNoAnswer") == 1
    await replay(lab, rna * 2)
    assert lab.queues.actions == []
    await replay(lab, rna)
    assert lab.queues.written() == [normalise(
        b"Action: QueuePause\r\nInterface: PJSIP/1001\r\nPaused: true\r\nReason: no answer\r\n"
        b"ActionID: x\r\n\r\n")]
    assert states_of(await store.get("2001")) == {"shortq": ("paused", "no answer"),
                                                  "inbound": ("paused", "no answer")}
    assert lab.sample("ccengine_agent_pauses_total", reason="no answer") == 1
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_member_added_paused_unpaused_removed(redis_url):
    """c_member_actions: QueueMemberAdded -> idle, QueueMemberPause lunch -> paused with its
    reason, unpause -> idle, QueueMemberRemoved -> logged out; the Local/ member is not ours."""
    lab, store, seen = await lab_with_phones(redis_url, ["1005"], {"supervisor": 0})
    await replay(lab, ami_replay.events("c_member_actions"))
    assert [s[2:] for s in seen] == [("idle", ""), ("paused", "lunch"), ("idle", "")]
    assert await store.get("2005") == {}
    assert lab.sample("ccengine_agents", queue="supervisor", state="idle") == 0
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_connect_resets_the_no_answer_count(redis_url):
    """A ring-no-answer, an answered call (ami9's 1002 events moved onto phone 1001), then two
    more ring-no-answers: not three in a row, so no pause."""
    lab, store, seen = await lab_with_phones(redis_url, ["1001"], {"shortq": 0})
    events = ami_replay.events("ami9_pause_rna_incall", connection="c1")
    rna = [m for m in events if m.get("Interface") == "PJSIP/1001"]
    answered = [ami_replay.Message([(k, "PJSIP/1001" if v == "PJSIP/1002" else v)
                                    for k, v in m.items()])
                for m in events if m.get("Interface") == "PJSIP/1002"]
    await replay(lab, rna + answered + rna + rna)
    assert lab.queues.actions == []
    assert (await store.get("2001"))["shortq"].state in ("wrapup", "idle")
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_a_member_status_storm_is_merged_and_ends_in_the_last_state(redis_url):
    """issue 19 point 7: 10,000 QueueMemberStatus events for one logged-in agent in one burst
    (the recorded ami9 event, its Status alternating in use / not in use): the agent's state
    ends as the last event says, with a bounded number of Redis writes, and the merged events
    are counted."""
    from agents_lab import substitute
    lab, store, seen = await lab_with_phones(redis_url, ["1001"], {"inbound": 0})
    recorded = next(m for m in ami_replay.events("ami9_pause_rna_incall", "QueueMemberStatus")
                    if m.get("Interface") == "PJSIP/1001")
    storm = [substitute(recorded, Queue="inbound", Paused="0", Status="2" if i % 2 else "1")
             for i in range(10_000)]
    storm.append(substitute(recorded, Queue="inbound", Paused="0", Status="2"))
    await replay(lab, storm)
    assert states_of(await store.get("2001")) == {"inbound": ("on_call", "")}
    assert len(seen) < 300                      # handled: about COALESCE_FROM, not 10,000
    merged = lab.sample("ccengine_agent_events_coalesced_total", how="merged")
    assert merged > 9_000
    await lab.close()
