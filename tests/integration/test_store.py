"""Customer lookup and call records against a real redis-server."""
import pytest
import pytest_twisted
import redis

from ccengine.store.base import RedisConnection, StoreUnavailable
from ccengine.calls.records import CallRecordStore
from ccengine.calls.customers import CustomerStore


@pytest_twisted.ensureDeferred
async def test_lookup_recognises_vip_known_new_and_blocked(redis_url):
    """One pipeline answers tier, name, language and the blocklist for a number."""
    conn = RedisConnection(redis_url)
    customers = CustomerStore(conn)
    await customers.put_customer("13800000001", name="李雷", tier="vip", language="zh")
    await customers.put_customer("13800000002", name="Han Meimei", language="en")
    await customers.block(["13800000003"])
    vip = await customers.lookup("13800000001")
    known = await customers.lookup("13800000002")
    new = await customers.lookup("13800000009")
    blocked = await customers.lookup("13800000003")
    assert (vip.tier, vip.name, vip.language, vip.blocked) == ("vip", "李雷", "zh", False)
    assert (known.tier, known.language) == ("known", "en")
    assert (new.tier, new.name, new.blocked) == ("new", "", False)
    assert blocked.blocked is True
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_call_records_are_bounded_by_count(redis_url):
    """Saving more records than max_calls trims the oldest ids and deletes their hashes."""
    conn = RedisConnection(redis_url)
    records = CallRecordStore(conn, max_calls=3, ttl_days=1)
    for i in range(5):
        await records.save(f"call-{i}", 1000.0 + i, {"caller": "1380000000", "outcome": "queued"})
    assert await records.recent(10) == ["call-4", "call-3", "call-2"]
    assert await records.get("call-0") == {}
    assert (await records.get("call-4"))["outcome"] == "queued"
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    assert 0 < sync.ttl("cc:call:call-4") <= 86400
    assert await records.update("call-4", {"outcome": "answered", "agent": "1023"}) is True
    assert await records.update("nope", {"outcome": "x"}) is False
    assert (await records.get("call-4"))["agent"] == "1023"
    sync.close()
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_unreachable_redis_raises_store_unavailable():
    """A Redis that does not answer becomes the one domain error StoreUnavailable."""
    from ccengine.store.embedded import free_port
    conn = RedisConnection(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        await CustomerStore(conn).lookup("13800000001")
    except StoreUnavailable as exc:
        assert "redis" in str(exc)
    else:
        raise AssertionError("lookup against a closed port did not fail")
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_a_durable_write_without_enough_replicas_is_not_acknowledged(redis_url):
    """redis.min_replicas_ack = 1 on a Redis with no replica: WAIT answers 0, so a callback
    request fails (the caller is told it could not be stored) although the script ran; with 0
    (the default) it is acknowledged as before."""
    from ccengine.config import parse_config
    from ccengine.store.base import RedisConnection, StoreUnavailable
    from ccengine.waiting.callbacks import CallbackStore
    strict = parse_config({"redis": {"url": redis_url, "min_replicas_ack": 1,
                                     "replica_ack_timeout_ms": 50}})
    conn = RedisConnection.from_config(strict.redis, redis_url)
    with pytest.raises(StoreUnavailable, match="0 of 1 replica"):
        await CallbackStore(conn, ["inbound"], 48).request(
            "13800000001", "inbound", "zh", "durable-1", 0, 1.0, 2.0)
    await conn.close()
    plain = RedisConnection.from_config(parse_config({"redis": {"url": redis_url}}).redis,
                                        redis_url)
    stored = await CallbackStore(plain, ["inbound"], 48).request(
        "13800000002", "inbound", "zh", "durable-2", 0, 1.0, 2.0)
    assert stored.id and stored.created
    await plain.close()
