"""Agents' feature codes end to end at the protocol level: a scripted Asterisk dials the AGI
route (reply formats of tests/fixtures/agi, transcripts2/agi1_dtmf for digits), a real AmiClient
writes the member actions to a transport answered with the recorded responses of
transcripts/c_member_actions.ami.txt, and real Redis holds the directory and the state.

The expected AMI bytes are the captured actions of c_member_actions.ami.txt with the queue,
interface and member name substituted (ActionID aside): the format Asterisk 22 accepted.
"""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest_twisted
from twisted.internet.defer import Deferred
import redis

import ami_replay
from agents_lab import AgentsLab, normalise
from ccengine.agents.directory import AgentDirectory, AgentRecord, hash_pin
from ccengine.agents.state import AgentStateStore

MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
MONDAY_11PM = datetime(2026, 11, 23, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
CAPTURED = [normalise(a) for a in ami_replay.sent_actions("c_member_actions")]
LOGIN_KEYS = {"agent_login_enter_number": "1023", "agent_login_enter_pin": "4321"}


def captured(index: int, *replace: tuple[bytes, bytes], drop: bytes = b"") -> bytes:
    """Captured action `index` of c_member_actions with values substituted / one line dropped."""
    data = CAPTURED[index]
    for old, new in replace:
        data = data.replace(old, new)
    return data.replace(drop, b"") if drop else data


QUEUEADD = [  # lab-2: QueueAdd supervisor PJSIP/1005 "Supervisor 1005" Penalty 0 Paused false
    captured(1, (b"supervisor", b"complaint"), (b"Supervisor 1005", b"1023"),
             (b"PJSIP/1005", b"PJSIP/1003")),
    captured(1, (b"supervisor", b"inbound"), (b"Supervisor 1005", b"1023"),
             (b"PJSIP/1005", b"PJSIP/1003"), (b"Penalty: 0", b"Penalty: 1")),
]


async def lab_with_agent(redis_url, now=MONDAY_11PM, number="1023", queues=None):
    lab = AgentsLab(redis_url, now=now)
    await AgentDirectory(lab.conn).put(AgentRecord(
        number, queues or {"complaint": 0, "inbound": 1}, ("en",), "Li Lei",
        hash_pin("4321", iterations=1000)))
    return lab


async def logged_in_lab(redis_url, now=MONDAY_11PM):
    lab = await lab_with_agent(redis_url, now)
    await lab.dial("agent-login", keys=LOGIN_KEYS)
    lab.queues.actions.clear()
    return lab


def sync(redis_url):
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest_twisted.ensureDeferred
async def test_login_adds_the_phone_to_every_queue_with_number_as_member_name(redis_url):
    """Login with the right PIN writes one QueueAdd per queue in the captured format, with the
    agent number as MemberName, and stores the login and idle states."""
    lab = await lab_with_agent(redis_url)
    asterisk, keypad = await lab.dial("agent-login", keys=LOGIN_KEYS)
    assert lab.queues.written() == QUEUEADD
    assert b"Li Lei" not in lab.harness.transport.value()
    assert asterisk.variables["CC_ROUTE_OK"] == "1"
    assert "agent_login_ok-1" in keypad.heard()
    r = sync(redis_url)
    assert r.get("cc:agent:phone:1003") == "1023"
    assert r.hget("cc:agent:session:1023", "interface") == "PJSIP/1003"
    states = await AgentStateStore(lab.conn).get("1023")
    assert {q: s.state for q, s in states.items()} == {"complaint": "idle", "inbound": "idle"}
    assert lab.sample("ccengine_agent_logins_total", result="ok") == 1
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_wrong_pin_changes_nothing_and_three_in_a_row_lock_the_agent(redis_url):
    """Each wrong PIN is spoken and counted with no AMI action; the third locks the agent, and
    then even the right PIN is refused."""
    lab = await lab_with_agent(redis_url)
    wrong = {"agent_login_enter_number": "1023", "agent_login_enter_pin": "9999"}
    for _ in range(2):
        asterisk, keypad = await lab.dial("agent-login", keys=wrong)
        assert "agent_login_failed" in keypad.heard()
    asterisk, keypad = await lab.dial("agent-login", keys=wrong)
    assert "agent_login_locked-1" in keypad.heard()
    asterisk, keypad = await lab.dial("agent-login", keys=dict(LOGIN_KEYS))
    assert "agent_login_locked-1" in keypad.heard()
    assert "agent_login_enter_pin" not in keypad.heard()
    assert lab.queues.actions == []
    r = sync(redis_url)
    assert 0 < r.ttl("cc:agent:lock:1023") <= 300
    assert not r.exists("cc:agent:session:1023")
    assert lab.sample("ccengine_agent_logins_total", result="wrong_pin") == 2
    assert lab.sample("ccengine_agent_logins_total", result="locked") == 2
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_unknown_agent_hears_what_a_wrong_pin_hears_and_nothing_changes(redis_url):
    """An agent number that is not in the directory is asked for a PIN and told "agent number
    or PIN not correct", exactly like a wrong PIN (issue 19 point 3: no enumeration)."""
    lab = await lab_with_agent(redis_url)
    asterisk, keypad = await lab.dial("agent-login", keys={"agent_login_enter_number": "5555",
                                                           "agent_login_enter_pin": "1234"})
    _, wrong = await lab.dial("agent-login", keys={"agent_login_enter_number": "1023",
                                                   "agent_login_enter_pin": "9999"})
    assert keypad.heard() == wrong.heard()
    assert "agent_login_enter_pin" in keypad.heard() and "agent_login_failed" in keypad.heard()
    assert lab.queues.actions == []
    assert asterisk.variables["CC_ROUTE_OK"] == "1"
    assert lab.sample("ccengine_agent_logins_total", result="unknown_agent") == 1
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_agent_logged_in_elsewhere_and_phone_in_use_are_refused(redis_url):
    """The same agent from a second phone, and a second agent on a taken phone, are refused
    with their messages, with no AMI action and the first login untouched."""
    lab = await logged_in_lab(redis_url)
    await AgentDirectory(lab.conn).put(AgentRecord("1024", {"inbound": 0}, ("en",), "",
                                                   hash_pin("1111", iterations=1000)))
    _, keypad = await lab.dial("agent-login", phone="1004", keys=dict(LOGIN_KEYS))
    assert "agent_login_elsewhere" in keypad.heard()
    _, keypad = await lab.dial("agent-login", phone="1003", keys={
        "agent_login_enter_number": "1024", "agent_login_enter_pin": "1111"})
    assert "agent_login_phone_in_use" in keypad.heard()
    assert lab.queues.actions == []
    r = sync(redis_url)
    assert r.get("cc:agent:phone:1003") == "1023" and not r.exists("cc:agent:phone:1004")
    assert not r.exists("cc:agent:session:1024")
    assert lab.sample("ccengine_agent_logins_total", result="elsewhere") == 1
    assert lab.sample("ccengine_agent_logins_total", result="phone_in_use") == 1
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_nobody_logs_in_another_phone(redis_url):
    """A first AGI argument naming another phone than the channel's is refused silently
    (no prompt, no CC_ROUTE_OK, no AMI action); a Local channel is no phone either."""
    lab = await lab_with_agent(redis_url)
    asterisk, keypad = await lab.dial("agent-login", phone="1003", args=("1004",),
                                      keys=dict(LOGIN_KEYS))
    assert "CC_ROUTE_OK" not in asterisk.variables and keypad.played == []
    asterisk, keypad = await lab.dial("agent-login", channel="Local/1003@agents-00000001;1",
                                      args=("1003",), keys=dict(LOGIN_KEYS))
    assert "CC_ROUTE_OK" not in asterisk.variables and keypad.played == []
    assert lab.queues.actions == []
    assert lab.sample("ccengine_agent_logins_total", result="not_a_phone") == 2
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_pause_with_reason_code_and_unpause(redis_url):
    """*732 pauses the phone in all its queues with reason 'meal' (QueuePause without Queue, as
    lab-5 of the capture, plus Reason); *74 unpauses it; the states follow."""
    lab = await logged_in_lab(redis_url)
    asterisk, keypad = await lab.dial("agent-pause", args=("1003", "2"))
    assert "agent_pause_ok" in keypad.heard()
    paused = captured(4, (b"Local/1005@agents/n", b"PJSIP/1003"),
                      (b"Paused: false\r\n", b"Paused: true\r\nReason: meal\r\n"))
    assert lab.queues.written() == [paused]
    states = await AgentStateStore(lab.conn).get("1023")
    assert {s.state + ":" + s.reason for s in states.values()} == {"paused:meal"}
    assert lab.sample("ccengine_agent_pauses_total", reason="meal") == 1
    lab.queues.actions.clear()
    asterisk, keypad = await lab.dial("agent-unpause")
    assert lab.queues.written() == [captured(4, (b"Local/1005@agents/n", b"PJSIP/1003"))]
    assert "agent_unpause_ok" in keypad.heard()
    states = await AgentStateStore(lab.conn).get("1023")
    assert {s.state for s in states.values()} == {"idle"}
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_pause_asks_for_the_reason_and_refuses_an_unknown_code(redis_url):
    """Without a code the route asks for one; a code not in agents.pause_reasons is refused."""
    lab = await logged_in_lab(redis_url)
    asterisk, keypad = await lab.dial("agent-pause", keys={"agent_pause_enter_reason": "9"})
    assert keypad.heard()[:2] == ["agent_pause_enter_reason", "agent_pause_invalid_reason"]
    assert lab.queues.actions == []
    asterisk, keypad = await lab.dial("agent-pause", keys={"agent_pause_enter_reason": "1"})
    assert "agent_pause_ok" in keypad.heard()
    assert b"Reason: break" in lab.queues.actions[0]
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_staffing_guard_refuses_a_pause_during_opening_hours_until_overridden(redis_url):
    """At 10:00 on a Monday the only agent of inbound/complaint (minimum 1) may not pause; after
    `agents allow-pause` (a one-time key) the same pause goes through."""
    lab = await logged_in_lab(redis_url, now=MONDAY_10AM)
    asterisk, keypad = await lab.dial("agent-pause", args=("1003", "1"))
    assert "agent_pause_refused_staffing" in keypad.heard()
    assert lab.queues.actions == []
    sync(redis_url).set("cc:agent:pauseok:1023", "1", ex=900)
    asterisk, keypad = await lab.dial("agent-pause", args=("1003", "1"))
    assert "agent_pause_ok" in keypad.heard()
    assert not sync(redis_url).exists("cc:agent:pauseok:1023")
    assert lab.sample("ccengine_agent_pause_requests_total", result="refused_staffing") == 1
    assert lab.sample("ccengine_queue_available_agents", queue="inbound") == 0
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_logout_removes_the_phone_from_its_queues(redis_url):
    """*72 writes QueueRemove per queue (format of lab-7) and forgets login and states."""
    lab = await logged_in_lab(redis_url)
    asterisk, keypad = await lab.dial("agent-logout")
    assert lab.queues.written() == [
        captured(6, (b"supervisor", b"complaint"), (b"PJSIP/1005", b"PJSIP/1003")),
        captured(6, (b"supervisor", b"inbound"), (b"PJSIP/1005", b"PJSIP/1003"))]
    assert "agent_logout_ok" in keypad.heard()
    r = sync(redis_url)
    assert not r.exists("cc:agent:session:1023", "cc:agent:phone:1003", "cc:agent:state:1023")
    assert lab.sample("ccengine_agents", queue="inbound", state="idle") == 0
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_codes_from_a_phone_nobody_uses_say_not_logged_in(redis_url):
    """Logout, pause and unpause from a phone with no login say so and write no AMI action."""
    lab = await lab_with_agent(redis_url)
    for script in ("agent-logout", "agent-pause", "agent-unpause"):
        asterisk, keypad = await lab.dial(script)
        assert keypad.heard() == ["agent_not_logged_in"]
        assert asterisk.variables["CC_ROUTE_OK"] == "1"
    assert lab.queues.actions == []
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_pin_check_runs_off_the_reactor_while_other_calls_are_served(redis_url):
    """The PIN hash is computed in a thread: while one login's check is held in the thread
    pool, another phone's feature code (a full AGI session) is served to its end; the login
    then completes. On the reactor the check would have blocked every session meanwhile
    (issue 18: 47 ms of PBKDF2 per check)."""
    import threading

    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import deferLater
    from twisted.internet.threads import deferToThread
    from twisted.internet import reactor

    from ccengine.agents.directory import verify_pin
    lab = await lab_with_agent(redis_url)
    started, release = threading.Event(), threading.Event()

    def held_check(pin, stored):
        def work():
            started.set()
            release.wait(10)
            return verify_pin(pin, stored)
        return deferToThread(work)
    lab.feature.routes["agent-login"]._handler.__self__.check_pin = held_check
    login = ensureDeferred(lab.dial("agent-login", keys=LOGIN_KEYS))
    while not started.is_set():
        await deferLater(reactor, 0.01, lambda: None)
    other, keypad = await lab.dial("agent-unpause", phone="1004")
    assert "agent_not_logged_in" in keypad.heard() and other.closed
    assert not login.called                      # the login is still waiting for its hash
    release.set()
    asterisk, keypad = await login
    assert "agent_login_ok-1" in keypad.heard()
    assert asterisk.variables["CC_ROUTE_OK"] == "1"
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_the_wired_pin_check_hashes_in_a_worker_thread(redis_url, monkeypatch):
    """The feature wires check_pin_in_thread, and it runs verify_pin outside the reactor's
    thread (the thread the test itself runs in)."""
    import threading

    from ccengine.agents import login as login_module
    lab = await lab_with_agent(redis_url)
    codes = lab.feature.routes["agent-login"]._handler.__self__
    assert codes.check_pin is login_module.check_pin_in_thread
    threads = []
    real = login_module.verify_pin

    def recording(pin, stored):
        threads.append(threading.current_thread())
        return real(pin, stored)
    monkeypatch.setattr(login_module, "verify_pin", recording)
    asterisk, keypad = await lab.dial("agent-login", keys=LOGIN_KEYS)
    assert "agent_login_ok-1" in keypad.heard()
    assert threads and threads[0] is not threading.current_thread()
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_thirty_simultaneous_logins_get_at_most_the_allowed_pin_checks(redis_url):
    """issue 19 point 3: 30 sessions for agent 1023 at once (29 wrong PINs, then the right
    one), from 30 phones: the attempt is counted before the PIN is checked, in one script, so
    at most max_pin_failures (3) sessions reach the PIN question and the agent ends locked."""
    from twisted.internet.defer import DeferredList
    lab = await lab_with_agent(redis_url)
    sessions = [lab.dial("agent-login", phone=f"20{i:02d}", keys={
        "agent_login_enter_number": "1023",
        "agent_login_enter_pin": "9999" if i < 29 else LOGIN_KEYS["agent_login_enter_pin"]})
        for i in range(30)]
    results = await DeferredList([Deferred.fromCoroutine(s) for s in sessions],
                                 fireOnOneErrback=True)
    asked = [keypad for _, (_, keypad) in results if "agent_login_enter_pin" in keypad.heard()]
    assert len(asked) <= 3
    r = sync(redis_url)
    assert r.exists("cc:agent:lock:1023")
    assert lab.sample("ccengine_agent_logins_total", result="locked") >= 27
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_one_phone_cannot_try_more_than_its_limit_nor_lock_out_others(redis_url):
    """One phone keys 12 different agent numbers with wrong PINs: after
    agents.max_pin_attempts_per_phone (10) it is refused before any PIN is asked, and no other
    agent is locked by it."""
    lab = await lab_with_agent(redis_url)
    heard = []
    for i in range(12):
        _, keypad = await lab.dial("agent-login", phone="1009", keys={
            "agent_login_enter_number": f"30{i:02d}", "agent_login_enter_pin": "9999"})
        heard.append(keypad.heard())
    assert all("agent_login_enter_pin" in h for h in heard[:10])
    assert all("agent_login_enter_pin" not in h and "agent_login_locked-1" in h
               for h in heard[10:])
    r = sync(redis_url)
    assert r.keys("cc:agent:lock:*") == []
    assert lab.sample("ccengine_agent_logins_total", result="phone_limited") == 2
    # Another phone is not affected.
    _, keypad = await lab.dial("agent-login", keys=dict(LOGIN_KEYS))
    assert "agent_login_ok-1" in keypad.heard()
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_login_without_ami_is_refused_before_anything_is_written(redis_url):
    """issue 19 point 9: with AMI disabled no phone can join a queue: the login is refused
    aloud (technical_difficulty) and no session is written (it used to be written, then an
    AttributeError)."""
    lab = await lab_with_agent(redis_url)
    lab.feature.codes.actions.ami = None
    asterisk, keypad = await lab.dial("agent-login", keys=dict(LOGIN_KEYS))
    assert "technical_difficulty" in keypad.heard()
    assert "agent_login_enter_number" not in keypad.heard()
    assert asterisk.variables["CC_ROUTE_OK"] == "1"
    assert not sync(redis_url).exists("cc:agent:session:1023")
    await lab.close()
