"""What callers live through on a real Asterisk 22 with our dialplans and a real engine.

SIPp plays the callers and the agents' phones (tests/asterisk_lab.py); an AMI observer with
read=all keeps Asterisk's own events with their Timestamps, which are the measure of every
check below. Skipped unless CCENGINE_TEST_ASTERISK names an install prefix (conftest.py).

The bounds asserted are the service promises the issue states for callers (a free agent within
the 15 s service level of the menu key, the default queue within the 30 s no-input budget),
read from Asterisk's clock; each test also prints its timeline, and the logs are kept under
tests/asterisk/artefacts/<test>/.
"""
from __future__ import annotations

import redis

import pytest

from asterisk_lab import AGENT_PIN, finished, keys, wait_for

CALLER_A = "13800000001"
CALLER_B = "13800000002"
# Asterisk log lines that the engine being DOWN causes by design (res_agi cannot connect):
# not caused by our dialplans, and exactly what the fallback is for.
ENGINE_DOWN_WARNINGS = ("res_agi.c: Connecting to '127.0.0.1:", "Couldn't connect to any host")
# AGI commands that keep the caller listening or waiting (res_agi's command names).
MEDIA = {"STREAM", "WAIT", "GET", "SAY", "EXEC", "CONTROL", "RECORD"}


def ts(event: dict) -> float:
    return float(event["Timestamp"])


def log_in(lab, agent: str = "1001") -> None:
    """The agent dials *71 from their phone and keys their number and PIN."""
    lab.sipp.agent_phone(agent)
    steps = [("wait", 1500)] + keys(agent + "#") + [("wait", 1200)] + keys(AGENT_PIN + "#")
    login = lab.sipp.feature_code(f"login-{agent}", agent, "*71", steps)
    # far end hangs up after agent_login_ok: the scenario ends with Asterisk's BYE
    assert finished(login, 60) != 255
    lab.ami.wait("QueueMemberAdded", timeout=30, Queue="inbound", MemberName=agent)


def caller_channel(lab, number: str) -> dict:
    return lab.ami.wait("Newchannel", timeout=20, CallerIDNum=number)


def our_warnings(lab, allowed: tuple[str, ...] = ()) -> list[str]:
    return [line for line in lab.asterisk.warnings()
            if not any(text in line for text in allowed)]


def test_caller_with_a_free_agent_is_queued_at_once_and_talks_within_the_service_level(lab):
    """Agent 1001 logs in with *71 and is idle; a caller presses 1 during the menu. Queue()
    starts with nothing played in between (no queue-announce before the first entry), the
    agent is rung, the agent-number announcement runs, and the caller is talking to the agent
    within 15 s of the key. The engine's answer-time metric for the call equals Asterisk's
    AgentConnect Timestamp minus its first QueueCallerJoin Timestamp."""
    log_in(lab)
    call = lab.sipp.call("caller", CALLER_A, [("wait", 4000), ("key", "1"), ("wait", 14000)])
    channel = caller_channel(lab, CALLER_A)["Uniqueid"]
    key = lab.ami.wait("DTMFEnd", Uniqueid=channel, Digit="1")
    join = lab.ami.wait("QueueCallerJoin", Uniqueid=channel, Queue="inbound")
    connect = lab.ami.wait("AgentConnect", timeout=30, Uniqueid=channel)
    answered = [e for e in lab.ami.find("DialEnd", Uniqueid=channel)
                if e.get("DialStatus") == "ANSWER"][0]
    assert finished(call, 60) == 0
    played = [e["Command"] for e in lab.ami.find("AGIExecStart", Uniqueid=channel)
              if ts(key) <= ts(e) <= ts(join) and e["Command"].split()[0] in MEDIA]
    print(f"\nkey -> QueueCallerJoin {ts(join) - ts(key):.3f} s; agent answered -> "
          f"AgentConnect (agent-number announcement) {ts(connect) - ts(answered):.3f} s; "
          f"key -> AgentConnect {ts(connect) - ts(key):.3f} s")
    assert played == []                        # nothing played between the key and Queue()
    assert ts(connect) - ts(key) <= 15.0       # the service level, counted from the menu key
    expected = ts(connect) - ts(join)
    wait_for(lambda: lab.engine.metric("ccengine_queue_answer_time_seconds_count",
                                       queue="inbound", server="asterisk") == 1.0,
             10, "the engine's answer")
    measured = lab.engine.metric("ccengine_queue_answer_time_seconds_sum", queue="inbound",
                                 server="asterisk")
    assert measured == pytest.approx(expected, abs=0.002)
    # What the engine's AMI user receives (manager.conf eventfilter) against everything the
    # observer (read=all, no filter) saw of the same login and call: printed, not asserted.
    received = lab.engine.metric("ccengine_ami_events_total", server="asterisk")
    seen = (lab.asterisk.home / "ami_stream.raw").read_bytes().count(b"\r\nEvent: ") + 1
    print(f"engine received {received:.0f} AMI events; the unfiltered observer {seen}")
    assert our_warnings(lab) == []


def test_key_during_the_greeting_is_taken(lab):
    """Type-ahead: 3 pressed one second into the greeting puts the caller into the complaint
    queue within 2 s of answer; the menu is never played."""
    call = lab.sipp.call("caller", CALLER_A, [("wait", 1000), ("key", "3"), ("wait", 3000)])
    channel = caller_channel(lab, CALLER_A)["Uniqueid"]
    up = lab.ami.wait("Newstate", Uniqueid=channel, ChannelStateDesc="Up")
    join = lab.ami.wait("QueueCallerJoin", Uniqueid=channel)
    assert finished(call, 30) == 0
    print(f"\nanswer -> QueueCallerJoin {ts(join) - ts(up):.3f} s")
    assert join["Queue"] == "complaint"
    assert ts(join) - ts(up) <= 2.0
    assert "ccengine/menu" not in lab.asterisk.messages.read_text()
    assert our_warnings(lab) == []


def test_caller_pressing_nothing_reaches_the_default_queue_within_the_budget(lab):
    """No key at all: the menu is played as often as fits the 30 s budget, then the default
    queue (inbound), joined at most 30 s after answer."""
    call = lab.sipp.call("caller", CALLER_A, [("wait", 34000)])
    channel = caller_channel(lab, CALLER_A)["Uniqueid"]
    up = lab.ami.wait("Newstate", Uniqueid=channel, ChannelStateDesc="Up")
    join = lab.ami.wait("QueueCallerJoin", timeout=40, Uniqueid=channel)
    assert finished(call, 60) == 0
    print(f"\nanswer -> QueueCallerJoin {ts(join) - ts(up):.3f} s")
    assert join["Queue"] == "inbound"
    assert ts(join) - ts(up) <= 30.0
    assert lab.engine.metric("ccengine_menu_defaulted_total") == 1.0
    assert our_warnings(lab) == []


@pytest.mark.engine_down
def test_engine_down_a_key_in_the_fallback_queue_keeps_the_place(lab):
    """The engine is not running. Caller A enters the fallback inbound queue, caller B joins
    behind; A presses 2: A leaves through ccengine-qexit, the announcement AGI fails at once,
    and A re-enters AHEAD of B (transcripts3 engine_down_key2_in_fallback_queue: behind B,
    after Queue("") failed)."""
    a = lab.sipp.call("caller-a", CALLER_A, [("wait", 9000), ("key", "2"), ("wait", 4000)])
    a_chan = caller_channel(lab, CALLER_A)["Uniqueid"]
    lab.ami.wait("QueueCallerJoin", Uniqueid=a_chan)
    b = lab.sipp.call("caller-b", CALLER_B, [("wait", 12000)])
    b_chan = caller_channel(lab, CALLER_B)["Uniqueid"]
    lab.ami.wait("QueueCallerJoin", Uniqueid=b_chan)
    wait_for(lambda: len(lab.ami.find("QueueCallerJoin", Uniqueid=a_chan)) == 2, 20,
             "A's second entry")
    first, again = lab.ami.find("QueueCallerJoin", Uniqueid=a_chan)
    assert finished(a, 40) == 0 and finished(b, 40) == 0
    assert (first["Position"], again["Position"]) == ("1", "1")
    assert lab.ami.find("QueueCallerJoin", Uniqueid=b_chan)[0]["Position"] == "2"
    assert our_warnings(lab, ENGINE_DOWN_WARNINGS) == []


def test_callback_requested_after_30_s_keeps_the_first_entry_place(lab):
    """No agent is logged in. Caller A (menu key 1) and then caller B wait. After the 30 s
    slice A hears the announcement and presses 2, confirms the caller ID with 1 and is hung
    up after the confirmation. The callback is stored under A's QUEUE_PRIO and first-entry
    time, ahead of B, who joined after A; B is still waiting."""
    steps = [("wait", 4000), ("key", "1"), ("wait", 36000), ("key", "2")]
    steps += [("wait", 2500), ("key", "1"), ("wait", 2500), ("key", "1"), ("wait", 2500),
              ("key", "1")]
    a = lab.sipp.call("caller-a", CALLER_A, steps, far_end_hangs_up=True)
    a_chan = caller_channel(lab, CALLER_A)["Uniqueid"]
    a_join = lab.ami.wait("QueueCallerJoin", timeout=20, Uniqueid=a_chan)
    b = lab.sipp.call("caller-b", CALLER_B, [("wait", 4000), ("key", "1"), ("wait", 50000)])
    b_chan = caller_channel(lab, CALLER_B)["Uniqueid"]
    b_join = lab.ami.wait("QueueCallerJoin", timeout=20, Uniqueid=b_chan)
    assert finished(a, 120) == 0
    r = redis.Redis.from_url(lab.engine.redis_url, decode_responses=True)
    callback_id = r.get(f"cc:callback:open:{CALLER_A}")
    stored = r.hgetall(f"cc:callback:{callback_id}")
    prios = {e["Uniqueid"]: int(e["Value"]) for e in lab.ami.find("VarSet", Variable="QUEUE_PRIO")}
    print(f"\nA joined {ts(a_join):.3f} at {a_join['Position']}, B at {b_join['Position']}; "
          f"callback {stored}; QUEUE_PRIO {prios}")
    assert (a_join["Position"], b_join["Position"]) == ("1", "2")
    assert int(stored["priority"]) == prios[a_chan] > prios[b_chan]
    assert abs(float(stored["joined"]) - ts(a_join)) < 1.0      # CC_WAIT_SINCE is whole seconds
    # Waiting for the dialler, or (within calling hours) already handed over to its own job.
    if stored["state"] == "pending":
        assert r.zrange("cc:callbacks:ready:inbound", 0, -1) == [callback_id]
    else:
        assert (stored["state"], stored.get("handed_over_at", "") != "") == ("claimed", True)
    b.wait(60)
    assert our_warnings(lab) == []


def test_redis_stalled_caller_reaches_the_queue_within_the_watchdog_bound(lab):
    """Redis frozen (SIGSTOP) before the call: the lookup gives up after redis.timeout (2 s)
    and the caller is treated as new; the menu key then puts them into the queue within the
    3 s watchdog bound, with nothing played in between (transcripts3: 12.4-12.9 s, the join
    announcement waited for Redis and apologised first)."""
    import os
    import signal
    r = redis.Redis.from_url(lab.engine.redis_url)
    pid = int(r.info("server")["process_id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        call = lab.sipp.call("caller", CALLER_A, [("wait", 7000), ("key", "1"), ("wait", 5000)])
        channel = caller_channel(lab, CALLER_A)["Uniqueid"]
        key = lab.ami.wait("DTMFEnd", timeout=20, Uniqueid=channel, Digit="1")
        join = lab.ami.wait("QueueCallerJoin", timeout=20, Uniqueid=channel)
        assert finished(call, 40) == 0
    finally:
        os.kill(pid, signal.SIGCONT)
    played = [e["Command"] for e in lab.ami.find("AGIExecStart", Uniqueid=channel)
              if ts(key) <= ts(e) <= ts(join) and e["Command"].split()[0] in MEDIA]
    print(f"\nkey -> QueueCallerJoin with Redis stopped {ts(join) - ts(key):.3f} s")
    assert played == []
    assert ts(join) - ts(key) <= 3.0
    assert join["Queue"] == "inbound"
    assert our_warnings(lab) == []
