"""The agents' bulk reads (directory sessions, stored states) against a real redis-server:
what a resync of a large centre reads."""
import pytest_twisted
import redis

from ccengine.agents.directory import AgentDirectory, AgentSession
from ccengine.agents.state import AgentStateStore, MemberState
from ccengine.store.base import RedisConnection


def reads_processed(client: redis.Redis) -> int:
    return client.info("stats")["total_reads_processed"]


@pytest_twisted.ensureDeferred
async def test_sessions_reads_every_login_in_one_pipelined_round_trip(redis_url):
    """sessions() returns every login as session() reads it, and with 200 logins Redis reads
    a handful of requests, not one HGETALL per agent (a 2,000-agent resync made 2,000 round
    trips and ran past redis.timeout)."""
    conn = RedisConnection(redis_url)
    directory = AgentDirectory(conn)
    numbers = [str(3000 + i) for i in range(200)]
    for number in numbers:
        claimed = await directory.claim(AgentSession(number, f"p{number}", f"PJSIP/p{number}",
                                                     1000.5, {"inbound": 1}))
        assert claimed == "ok"
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    sync.sadd("cc:agents:logged_in", "9999")   # in the set, no session hash: left out
    before = reads_processed(sync)
    sessions = await directory.sessions()
    reads = reads_processed(sync) - before
    assert sorted(sessions) == numbers
    for number in (numbers[0], numbers[-1]):
        assert sessions[number] == await directory.session(number)
    assert sessions[numbers[7]] == AgentSession(numbers[7], f"p{numbers[7]}",
                                                f"PJSIP/p{numbers[7]}", 1000.5, {"inbound": 1})
    assert reads <= 5, reads      # SMEMBERS, the pipeline, our INFO
    sync.close()
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_sessions_with_nobody_logged_in_is_empty(redis_url):
    """sessions() with an empty logged-in set is {} (no empty pipeline sent)."""
    conn = RedisConnection(redis_url)
    assert await AgentDirectory(conn).sessions() == {}
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_state_load_reads_every_agent_in_one_round_trip_as_get_does(redis_url):
    """load() gives each agent's states as get() reads them (an unreadable field left out, an
    agent without states {}), makes them the snapshot, and with 200 agents Redis reads a
    handful of requests instead of one HGETALL per agent."""
    conn = RedisConnection(redis_url)
    store = AgentStateStore(conn)
    numbers = [str(4000 + i) for i in range(200)]
    for i, number in enumerate(numbers[:-1]):
        await store.put(number, "inbound", MemberState("idle", "", 1000.0 + i))
    await store.put(numbers[3], "complaint", MemberState("paused", "lunch", 5.0))
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    sync.hset(f"cc:agent:state:{numbers[5]}", "supervisor", "not json")
    store.snapshot.clear()
    before = reads_processed(sync)
    states = await store.load(numbers)
    reads = reads_processed(sync) - before
    for number in (numbers[0], numbers[3], numbers[5], numbers[-1]):
        assert states[number] == await store.get(number)
    assert states[numbers[3]] == {"inbound": MemberState("idle", "", 1003.0),
                                  "complaint": MemberState("paused", "lunch", 5.0)}
    assert states[numbers[-1]] == {}
    assert store.snapshot[(numbers[3], "complaint")] == MemberState("paused", "lunch", 5.0)
    assert len(store.snapshot) == 200
    assert reads <= 4, reads      # the pipeline, our INFO
    sync.close()
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_session_on_phone_with_states_reads_what_the_two_reads_gave_in_one_request(
        redis_url):
    """AgentStateStore.session_on_phone(phone) gives the directory's session_on_phone and that
    agent's get() (None and {} for a phone nobody is logged in on, or whose binding has no
    session), and Redis reads one request for it instead of three."""
    conn = RedisConnection(redis_url)
    directory, store = AgentDirectory(conn), AgentStateStore(conn)
    session = AgentSession("1023", "p1003", "PJSIP/p1003", 1000.25, {"inbound": 1,
                                                                   "complaint": 0})
    assert await directory.claim(session) == "ok"
    await store.put("1023", "inbound", MemberState("on_call", "", 1001.0))
    await store.put("1023", "complaint", MemberState("paused", "lunch", 999.0))
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    sync.set("cc:agent:phone:p2000", "2000")          # a binding without a session
    for phone in ("p1003", "p2000", "p9999"):
        expected_session = await directory.session_on_phone(phone)
        expected_states = await store.get(expected_session.number) if expected_session else {}
        assert await store.session_on_phone(phone) == (expected_session, expected_states)
    before = reads_processed(sync)
    found, states = await store.session_on_phone("p1003")
    assert reads_processed(sync) - before <= 2        # the script, our INFO
    assert found == session
    assert states == {"inbound": MemberState("on_call", "", 1001.0),
                      "complaint": MemberState("paused", "lunch", 999.0)}
    sync.close()
    await conn.close()
