"""Resync after an AMI reconnect and relog after an Asterisk restart, over the real AmiClient and
real Redis. The Asterisk side answers QueueStatus with recorded QueueMember items
(transcripts2/ami9_pause_rna_incall) built from its member table, and member actions with the
recorded responses of transcripts/c_member_actions.ami.txt; the restart is the event sequence of
transcripts2/ami10_restart (FullyBooted Uptime 246 on c1, Shutdown Restart: True, FullyBooted
Uptime 0 on c3).
"""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest_twisted
import redis

import ami_replay
from agents_lab import AgentsLab, normalise
from ccengine.agents.directory import AgentDirectory, AgentRecord, hash_pin

MONDAY_11PM = datetime(2026, 11, 23, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
LOGIN_KEYS = {"agent_login_enter_number": "1023", "agent_login_enter_pin": "4321"}
CAPTURED = [normalise(a) for a in ami_replay.sent_actions("c_member_actions")]
QUEUESTATUS = normalise(ami_replay.sent_actions("d_queuestatus_idle")[1])


async def logged_in_lab(redis_url):
    lab = AgentsLab(redis_url, now=MONDAY_11PM)
    directory = AgentDirectory(lab.conn)
    await directory.put(AgentRecord("1023", {"complaint": 0, "inbound": 1}, ("en",), "",
                                    hash_pin("4321", iterations=1000)))
    await directory.put(AgentRecord("1024", {"inbound": 0}, ("en",), "",
                                    hash_pin("1111", iterations=1000)))
    await lab.dial("agent-login", keys=LOGIN_KEYS)
    lab.queues.actions.clear()
    return lab


async def resync(lab):
    """What follows an AMI login: the queue feed's one QueueStatus, handed to the resync."""
    await lab.ctx.queues.resync()
    await lab.feature.events.drained()


def stored_states(redis_url):
    return redis.Redis.from_url(redis_url, decode_responses=True).hgetall("cc:agent:state:1023")


@pytest_twisted.ensureDeferred
async def test_reconnect_resync_repairs_drift_and_is_idempotent(redis_url):
    """Asterisk paused 1023 in complaint unseen, lost its inbound membership, and still has 1024
    (logged out) on phone 1004: resync takes Asterisk's pause, re-adds inbound, removes the stale
    member; afterwards both sides agree and a second resync writes nothing but QueueStatus."""
    lab = await logged_in_lab(redis_url)
    members = lab.queues.members
    members[("complaint", "PJSIP/1003")].update(Paused="1", PausedReason="meeting")
    del members[("inbound", "PJSIP/1003")]
    members[("inbound", "PJSIP/1004")] = {"Name": "1024", "Paused": "0", "PausedReason": "",
                                          "Penalty": "0"}
    await resync(lab)
    assert lab.queues.written() == [
        QUEUESTATUS,
        CAPTURED[6].replace(b"supervisor", b"inbound").replace(b"PJSIP/1005", b"PJSIP/1004"),
        CAPTURED[1].replace(b"supervisor", b"inbound").replace(b"Supervisor 1005", b"1023")
        .replace(b"PJSIP/1005", b"PJSIP/1003").replace(b"Penalty: 0", b"Penalty: 1")]
    states = stored_states(redis_url)
    assert '"reason": "meeting"' in states["complaint"] and '"state": "paused"' in states["complaint"]
    assert '"state": "idle"' in states["inbound"]
    assert sorted(members) == [("complaint", "PJSIP/1003"), ("inbound", "PJSIP/1003")]
    assert lab.sample("ccengine_agent_resync_repairs_total", action="add") == 1
    assert lab.sample("ccengine_agent_resync_repairs_total", action="remove") == 1

    lab.queues.actions.clear()
    await resync(lab)
    assert lab.queues.written() == [QUEUESTATUS]
    assert stored_states(redis_url) == states
    assert lab.sample("ccengine_agent_resyncs_total", kind="reconnect") == 2
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_restart_relogs_every_agent_with_pause_and_reason(redis_url):
    """After ami10's Shutdown (Restart: True) and a FullyBooted whose Uptime (0) is lower than the
    last one seen (246), the paused agent is added back to both queues paused with 'meal'
    (QueueAdd in the format of c_member_actions lab-3), and Redis keeps the pause."""
    lab = await logged_in_lab(redis_url)
    await lab.dial("agent-pause", args=("1003", "2"))
    paused_states = stored_states(redis_url)
    lab.queues.actions.clear()
    c1 = ami_replay.events("ami10_restart", "FullyBooted", "Shutdown", connection="c1")
    c3 = ami_replay.events("ami10_restart", "FullyBooted", connection="c3")
    assert [m["Uptime"] for m in c1 if m.event == "FullyBooted"] + [c3[0]["Uptime"]] == ["246", "0"]
    ami_replay.feed_client(lab.harness.client, [c1[0]])
    await lab.feature.events.drained()
    assert lab.queues.actions == []          # first FullyBooted seen: nothing to compare with
    lab.queues.members.clear()               # persistentmembers = no: the restart lost them
    ami_replay.feed_client(lab.harness.client, [c1[1], c3[0]])
    await lab.feature.events.drained()

    def relog(queue: bytes, penalty: bytes) -> bytes:
        return (CAPTURED[2].replace(b"Queue: inbound", b"Queue: " + queue)
                .replace(b"Local/1005@agents/n", b"PJSIP/1003")
                .replace(b"Agent 1005 (Local)", b"1023").replace(b"PJSIP/1005", b"PJSIP/1003")
                .replace(b"Penalty: 1", b"Penalty: " + penalty)
                .replace(b"login-paused", b"meal"))
    assert lab.queues.written() == [QUEUESTATUS, relog(b"complaint", b"0"), relog(b"inbound", b"1")]
    assert {m["PausedReason"] for m in lab.queues.members.values()} == {"meal"}
    assert stored_states(redis_url).keys() == paused_states.keys()
    assert all('"reason": "meal"' in v for v in stored_states(redis_url).values())
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.hget("cc:asterisk:boot", "uptime") == "0"
    assert not r.hexists("cc:asterisk:boot", "restart_pending")
    assert lab.sample("ccengine_agent_resyncs_total", kind="restart") == 1
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_restart_mode_restores_the_pause_redis_kept(redis_url):
    """When the login after a restart finds the member back but unpaused (e.g. restored by
    Asterisk without its pause), the restart resync re-applies the pause Redis kept per queue."""
    lab = await logged_in_lab(redis_url)
    await lab.dial("agent-pause", args=("1003", "3"))
    for member in lab.queues.members.values():
        member.update(Paused="0", PausedReason="")
    lab.queues.actions.clear()
    c1 = ami_replay.events("ami10_restart", "Shutdown", connection="c1")
    ami_replay.feed_client(lab.harness.client, c1)
    await lab.feature.events.drained()
    await resync(lab)
    pause = (CAPTURED[3].replace(b"PJSIP/1005", b"PJSIP/1003").replace(b"lunch", b"training"))
    assert lab.queues.written() == [QUEUESTATUS, pause.replace(b"supervisor", b"complaint"),
                                    pause.replace(b"supervisor", b"inbound")]
    assert {m["PausedReason"] for m in lab.queues.members.values()} == {"training"}
    await lab.close()
