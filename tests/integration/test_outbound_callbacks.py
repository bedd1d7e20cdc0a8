"""Callbacks from the waiting feature through the dialler, against a real redis-server:
an agent is reserved before the customer is dialled, never more dials than free agents,
and the callback request is completed when the call is answered. AMI replies from
tests/fixtures/ami/ami5_originate.ami.txt (#1, Reason 4)."""
from __future__ import annotations

import pytest_twisted
from twisted.internet.defer import ensureDeferred

from ccengine.agents.directory import AgentDirectory, AgentSession
from ccengine.agents.state import AgentStateStore, MemberState
from ccengine.outbound.pacing import AgentPool
from ccengine.outbound.sources import Sources
from ccengine.waiting.callbacks import CallbackStore
from outbound_helpers import QUEUES, Rig, first_of, recorded, retarget


async def setup(redis_url, agents=("1001",)):
    rig = Rig(redis_url)
    directory, states = AgentDirectory(rig.conn), AgentStateStore(rig.conn)
    now = rig.clock.seconds()
    for n, agent in enumerate(agents):
        session = AgentSession(agent, f"phone{agent}", f"PJSIP/phone{agent}", now,
                               {"inbound": 0})
        assert await directory.claim(session) == "ok"
        await states.put(agent, "inbound", MemberState("idle", "", now - 100 + n))
    callbacks = CallbackStore(rig.conn, QUEUES, expire_hours=48)
    pool = AgentPool(rig.conn, directory, states, wrapup_seconds=10)
    rig.dialler.pool = pool
    sources = Sources(rig.conn, rig.jobs, "Asia/Shanghai", callbacks=callbacks)
    return rig, rig.service(sources=sources, pool=pool), callbacks, states


async def request(callbacks, rig, number, uid):
    now = rig.clock.seconds()
    return await callbacks.request(number, "inbound", "zh", uid, 7000, now - 60, now)


@pytest_twisted.ensureDeferred
async def test_two_callbacks_one_free_agent_one_dial(redis_url):
    """Two callbacks wait, one agent is free: one Originate (to the agent's queue), the other
    callback waits; the reserved agent is not offered to the second dial."""
    rig, service, callbacks, _ = await setup(redis_url)
    await request(callbacks, rig, "13800000001", "u1")
    await request(callbacks, rig, "13800000002", "u2")
    d = ensureDeferred(service.round())
    assert await first_of(rig.ami.sent, d) == 0
    rig.harness.answer(recorded("orig-ok"))
    await d
    originate = [m for m in rig.harness.written() if m.get("Action") == "Originate"]
    assert len(originate) == 1
    assert (originate[0]["Context"], originate[0]["Exten"]) == ("ccengine-outbound-connect",
                                                                "inbound")
    assert rig.ami.originates() == 1
    waiting = [await rig.jobs.get(f"cb-{i}") for i in ("1", "2")]
    assert sorted(j.state for j in waiting) == ["dialling", "waiting"]
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_no_free_agent_no_dial(redis_url):
    """The only agent is paused: the callback is not dialled."""
    rig, service, callbacks, states = await setup(redis_url)
    await states.put("1001", "inbound", MemberState("paused", "break", rig.clock.seconds()))
    await request(callbacks, rig, "13800000001", "u1")
    await service.round()
    assert rig.ami.originates() == 0
    assert (await rig.jobs.get("cb-1")).state == "waiting"
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_answered_callback_completes_the_request(redis_url):
    """OriginateResponse Reason 4 for the callback's ChannelId: the job is done and the
    waiting feature's callback request is completed."""
    rig, service, callbacks, _ = await setup(redis_url)
    stored = await request(callbacks, rig, "13800000001", "u1")
    d = ensureDeferred(service.round())
    assert await first_of(rig.ami.sent, d) == 0
    rig.harness.answer(recorded("orig-ok"))
    await d
    originate = [m for m in rig.harness.written() if m.get("Action") == "Originate"][0]
    rig.harness.receive([retarget(recorded("orig-ok", "OriginateResponse"),
                                  ActionID=originate.action_id, Uniqueid=originate["ChannelId"])])
    await rig.settle()
    assert (await rig.jobs.get("cb-1")).state == "done"
    assert (await callbacks.get(stored.id)).state == "completed"
    await rig.conn.close()


@pytest_twisted.ensureDeferred
async def test_imported_callback_is_handed_over_and_not_redelivered_during_retries(redis_url):
    """Once the dialler stored its job, the callback leaves claim re-delivery: a long retry
    span (hours) does not hand it back to ready, and completing it still works."""
    rig, service, callbacks, _ = await setup(redis_url, agents=())
    stored = await request(callbacks, rig, "13800000001", "u1")
    now = rig.clock.seconds()
    assert await service.sources.import_callbacks(now) == 1
    assert await callbacks.redeliver(now + 6 * 3600, claim_timeout=300) == 0
    assert (await callbacks.get(stored.id)).state == "claimed"
    assert await callbacks.ready("inbound") == []
    assert await callbacks.complete(stored.id, "completed", now + 7 * 3600) is True
    await rig.conn.close()
