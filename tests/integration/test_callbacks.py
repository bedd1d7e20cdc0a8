"""Callback store and waiting line against a real redis-server: order, handoff, expiry, restart."""
import pytest
import pytest_twisted
import redis
from prometheus_client import CollectorRegistry

from ccengine.store.base import RedisConnection
from ccengine.waiting.callbacks import CallbackStore
from ccengine.waiting.line import WaitingLine
from ccengine.waiting.metrics import WaitingMetrics
from ccengine.waiting.numbers import NumberRejected
from ccengine.waiting.priority import SCALE, queue_priority

QUEUES = ["inbound", "complaint"]


def parts(url, registry=None):
    conn = RedisConnection(url)
    metrics = WaitingMetrics(registry or CollectorRegistry(), QUEUES)
    return conn, WaitingLine(conn), CallbackStore(conn, QUEUES, expire_hours=48, metrics=metrics)


def enter(line, uniqueid, base, first_entry, now=None):
    """The announcement of a caller who queued (dialplan) with base priority `base` at
    `first_entry`: the line gets the QUEUE_PRIO the dialplan computed."""
    prio = queue_priority(base, first_entry)
    return line.announce("inbound", uniqueid, prio, first_entry,
                         first_entry if now is None else now)


async def to_callback(store, line, place, number, now):
    return await store.request(number, place.queue, "zh", place.uniqueid, place.priority,
                               place.joined, now, replaces_caller=place.uniqueid)


@pytest_twisted.ensureDeferred
async def test_interleaved_joins_callbacks_and_answers_keep_first_join_order(redis_url):
    """Callers A..E join in order; B and D become callbacks, A is answered, C re-announces
    and a VIP-less later caller F joins: the line and the dialler see first-join order."""
    conn, line, store = parts(redis_url)
    places = {}
    for i, name in enumerate("ABCDE"):
        places[name] = await enter(line, f"u-{name}", 0, 100.0 + i)
    b = await to_callback(store, line, places["B"], "13800000002", 110.0)
    await line.leave("inbound", "u-A")                      # answered (AgentConnect)
    d = await to_callback(store, line, places["D"], "13800000004", 111.0)
    again = await enter(line, "u-C", 0, 102.0, now=130.0)  # periodic re-announce of C
    places["F"] = await enter(line, "u-F", 0, 131.0)
    assert (again.priority, again.joined) == (places["C"].priority, 102.0)  # same place
    assert await line.members("inbound") == [f"cb:{b.id}", "call:u-C", f"cb:{d.id}",
                                              "call:u-E", "call:u-F"]
    assert again.position == 2                               # the callback B is ahead of C
    assert places["E"].priority > places["F"].priority > 0
    assert await store.ready("inbound") == [b.id, d.id]
    claimed = await store.claim_next(200.0, "inbound")
    assert (claimed.id, claimed.number, claimed.priority) == (b.id, "13800000002",
                                                              places["B"].priority)
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_base_priority_ranks_before_first_join(redis_url):
    """A VIP (base 10) who joins later is ahead of earlier base-0 callers, and the QUEUE_PRIO
    values stay inside a C int."""
    conn, line, _ = parts(redis_url)
    first = await enter(line, "u-1", 0, 1.0)
    vip = await enter(line, "u-2", 10, 2.0)
    assert vip.position == 1 and vip.priority // SCALE == 10
    assert (await enter(line, "u-1", 0, 1.0, now=3.0)).position == 2
    assert first.priority < vip.priority < 2**31
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_repeat_request_updates_the_open_callback(redis_url):
    """A second request for the same number updates the first (one open callback per number)."""
    conn, line, store = parts(redis_url)
    first = await store.request("13800000001", "inbound", "zh", "c1", 9_999_990, 10.0, 10.0)
    second = await store.request("13800000001", "inbound", "en", "c2", 9_999_980, 20.0, 20.0)
    assert first.created and not second.created and first.id == second.id
    got = await store.get(first.id)
    assert (got.language, got.call_id, got.requests, got.priority) == ("en", "c2", 2, 9_999_990)
    assert await store.ready("inbound") == [first.id]
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_blocklist_and_do_not_call_store_nothing(redis_url):
    """Numbers on cc:blocklist or cc:dnc are refused with a reason and nothing is written."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.sadd("cc:blocklist", "13800000009")
    r.sadd("cc:dnc", "13800000008")
    conn, _, store = parts(redis_url)
    for number, reason in (("13800000009", "blocked"), ("13800000008", "do_not_call")):
        with pytest.raises(NumberRejected) as err:
            await store.request(number, "inbound", "zh", "c1", 1, 1.0, 1.0)
        assert err.value.reason == reason
    assert sorted(r.keys("cc:callback*")) == []
    r.close()
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_claim_complete_release_and_redelivery(redis_url):
    """A claim moves the callback to processing; release returns it; a stale claim is
    re-delivered once; complete finishes it exactly once and counts it."""
    registry = CollectorRegistry()
    conn, _, store = parts(redis_url, registry)
    stored = await store.request("13800000001", "complaint", "zh", "c1", 5, 1.0, 1.0)
    claim = await store.claim_next(10.0)
    assert claim.state == "claimed" and claim.deliveries == 1
    assert await store.claim_next(11.0) is None              # nothing else to hand out
    assert await store.release(stored.id) is True
    assert (await store.claim_next(12.0)).deliveries == 2
    assert await store.redeliver(100.0, claim_timeout=300) == 0
    assert await store.redeliver(400.0, claim_timeout=300) == 1
    assert await store.redeliver(401.0, claim_timeout=300) == 0
    await store.claim_next(402.0)
    assert await store.complete(stored.id, "completed", 403.0) is True
    assert await store.complete(stored.id, "completed", 404.0) is False
    assert await store.open_for("13800000001") is None
    assert (await store.get(stored.id)).state == "completed"
    value = registry.get_sample_value("ccengine_callbacks_completed_total", {"queue": "complaint"})
    assert value == 1.0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_pending_callbacks_expire_with_a_recorded_outcome(redis_url):
    """A pending callback past callback_expire_hours ends as `expired` and leaves the line."""
    registry = CollectorRegistry()
    conn, line, store = parts(redis_url, registry)
    place = await enter(line, "u-1", 0, 0.0)
    stored = await to_callback(store, line, place, "13800000001", 0.0)
    assert await store.expire(48 * 3600 - 1) == []
    assert await store.expire(48 * 3600 + 1) == ["inbound"]
    assert (await store.get(stored.id)).state == "expired"
    assert await line.members("inbound") == []
    assert registry.get_sample_value("ccengine_callbacks_expired_total",
                                     {"queue": "inbound"}) == 1.0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_acknowledged_callback_survives_an_engine_restart(redis_url):
    """A stored callback and a claim in flight are still there for a new engine process (a new
    connection); the claim is re-delivered once, not lost and not doubled."""
    conn, line, store = parts(redis_url)
    stored = await store.request("13800000001", "inbound", "zh", "c1", 7, 1.0, 1.0)
    await store.claim_next(2.0)
    await conn.close()                                       # the engine dies here
    conn2, _, store2 = parts(redis_url)
    assert await store2.claim_next(3.0) is None              # still claimed: not doubled
    assert await store2.redeliver(1000.0, claim_timeout=300) == 1
    again = await store2.claim_next(1001.0)
    assert (again.id, again.deliveries) == (stored.id, 2)
    await conn2.close()


@pytest_twisted.ensureDeferred
async def test_sweep_removes_callers_no_longer_announced(redis_url):
    """A caller whose end was missed (no AgentConnect/Hangup seen) leaves the line at the sweep."""
    conn, line, _ = parts(redis_url)
    await enter(line, "u-old", 0, 0.0)
    await enter(line, "u-new", 0, 100.0)
    assert await line.sweep("inbound", oldest=50.0) == 1
    assert await line.members("inbound") == ["call:u-new"]
    await conn.close()
