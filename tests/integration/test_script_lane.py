"""The script lane (store/resp.py) against a real redis-server: the same results as redis-py,
NOSCRIPT recovery, pairing under pipelining and cancellation, and every fault a
StoreUnavailable followed by recovery.

Runs on the real asyncio reactor (pytest-twisted). Stalls use the TCP proxy of the
reliability suite (tests/reliability/rel_support.py) in front of the real server.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_twisted
import redis
from prometheus_client import CollectorRegistry
from twisted.internet.defer import CancelledError, DeferredList

from ccengine.store.base import LuaScript, RedisConnection, StoreMetrics, StoreUnavailable
from ccengine.calls.records import CallRecordStore
from ccengine.calls.customers import CustomerStore
from ccengine.store.embedded import EmbeddedRedis, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reliability"))
from rel_support import StallingProxy  # noqa: E402


def reactor():
    from twisted.internet import reactor as r
    return r


def lane_conn(url: str, timeout: float = 2.0, registry=None) -> RedisConnection:
    metrics = StoreMetrics(registry) if registry is not None else None
    return RedisConnection(url, timeout, metrics, reactor())


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "redis-py"])
@pytest_twisted.ensureDeferred
async def test_lookup_and_record_save_agree_on_both_roads(redis_url, lane):
    """The lane and redis-py return the same profiles and write the same record and index."""
    conn = RedisConnection(redis_url, 2.0, None, reactor() if lane else None)
    assert (conn._lane is not None) == lane
    customers, records = CustomerStore(conn), CallRecordStore(conn, max_calls=2, ttl_days=1)
    try:
        await customers.put_customer("13800000001", name="李雷", tier="known", language="zh")
        await customers.block(["13900000000"])
        vip = await customers.lookup("13800000001", ("cc:test:zset",))
        assert (vip.tier, vip.name, vip.language, vip.blocked, vip.extra) == \
            ("known", "李雷", "zh", False, (0,))
        assert (await customers.lookup("13900000000")).blocked
        assert (await customers.lookup("13700000000")).tier == "new"
        for n in range(3):
            trimmed = await records.save(f"c{n}", 1000.5 + n, {"caller": "13800000001",
                                                               "customer": "李雷"})
        assert trimmed == 1
        assert await records.recent(10) == ["c2", "c1"]
        assert (await records.get("c2")) == {"caller": "13800000001", "customer": "李雷"}
        assert await records.get("c0") == {}
    finally:
        await conn.close()


@pytest_twisted.ensureDeferred
async def test_the_lane_sends_each_request_at_once_without_nagle(redis_url):
    """Pipelined requests must not wait for the previous one's ACK (Nagle's algorithm with the
    kernel's delayed ACK held a call's lookup up to 40 ms behind the previous call's record,
    found by bench/redis_calls.py): the lane's socket has TCP_NODELAY, as redis-py's has."""
    import socket
    conn = lane_conn(redis_url)
    try:
        await conn.script(LuaScript("return 1"), (), ())
        handle = conn._lane._protocol.transport.getHandle()
        assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        await conn.close()


@pytest_twisted.ensureDeferred
async def test_noscript_after_flush_runs_eval_and_caches_the_script_again(redis_url):
    """After SCRIPT FLUSH (or a Redis restart) EVALSHA answers NOSCRIPT; the lane runs EVAL
    once, and the next call finds the script cached."""
    conn = lane_conn(redis_url)
    script = LuaScript("return ARGV[1] .. '-' .. KEYS[1]")
    sync = redis.Redis.from_url(redis_url)
    try:
        sync.script_flush()
        assert await conn.script(script, ("k",), ("v",)) == "v-k"
        assert sync.script_exists(script.sha) == [True]
        assert await conn.script(script, ("k2",), (7,)) == "7-k2"
    finally:
        sync.close()
        await conn.close()


@pytest_twisted.ensureDeferred
async def test_error_reply_is_store_unavailable_and_the_connection_goes_on(redis_url):
    """A script error (`-ERR ...`) fails that call with StoreUnavailable, counted in
    ccengine_redis_errors_total; the next call on the same connection gets its own reply."""
    registry = CollectorRegistry()
    conn = lane_conn(redis_url, registry=registry)
    try:
        assert await conn.script(LuaScript("return redis.call('INCR', KEYS[1])"), ("s",), ()) == 1
        with pytest.raises(StoreUnavailable, match="RespError.*WRONGTYPE"):
            await conn.script(LuaScript("return redis.call('LPUSH', KEYS[1], 'x')"), ("s",), ())
        assert registry.get_sample_value("ccengine_redis_errors_total") == 1
        assert registry.get_sample_value("ccengine_redis_up") == 0
        assert await conn.script(LuaScript("return 5"), (), ()) == 5
        assert registry.get_sample_value("ccengine_redis_up") == 1
    finally:
        await conn.close()


@pytest_twisted.ensureDeferred
async def test_hundreds_of_pipelined_calls_each_get_their_own_reply(redis_url):
    """300 scripts in flight at once on one connection: every reply reaches its own caller."""
    conn = lane_conn(redis_url)
    echo = LuaScript("return ARGV[1]")
    try:
        results = await DeferredList([conn.script(echo, (), (f"n{i}",)) for i in range(300)],
                                     fireOnOneErrback=True)
        assert [value for _, value in results] == [f"n{i}" for i in range(300)]
    finally:
        await conn.close()


@pytest_twisted.ensureDeferred
async def test_a_cancelled_call_does_not_shift_the_replies_of_later_calls(redis_url):
    """A caller that gives up (its handler was cancelled) leaves its reply to be consumed; the
    next call is still paired with its own reply."""
    conn = lane_conn(redis_url)
    echo = LuaScript("return ARGV[1]")
    try:
        first = conn.script(echo, (), ("first",))
        second = conn.script(echo, (), ("second",))
        first.cancel()
        with pytest.raises(CancelledError):
            await first
        assert await second == "second"
        assert await conn.script(echo, (), ("third",)) == "third"
    finally:
        await conn.close()


@pytest_twisted.ensureDeferred
async def test_refused_connection_fails_fast_then_recovers_when_redis_starts(tmp_path):
    """Nobody listening: StoreUnavailable at once (no hang); once redis-server runs on that
    port, the next call connects and succeeds."""
    port = free_port()
    conn = lane_conn(f"redis://127.0.0.1:{port}/0", timeout=1.0)
    server = None
    try:
        with pytest.raises(StoreUnavailable, match="cannot connect"):
            await conn.script(LuaScript("return 1"), (), ())
        server = EmbeddedRedis(tmp_path / "redis", port=port).start()
        assert await conn.script(LuaScript("return 2"), (), ()) == 2
    finally:
        await conn.close()
        if server is not None:
            server.stop()


@pytest_twisted.ensureDeferred
async def test_stalled_redis_times_out_and_a_late_reply_is_never_paired(redis_server, redis_url):
    """While Redis is stalled, calls fail with StoreUnavailable after the timeout (both the one
    in flight and one queued behind it). The connection is dropped, so when the stall ends
    their replies cannot reach later callers: the next call gets its own value."""
    proxy = StallingProxy(reactor(), redis_server.host, redis_server.port)
    conn = lane_conn(proxy.url, timeout=0.3)
    echo = LuaScript("return ARGV[1]")
    try:
        assert await conn.script(echo, (), ("warm",)) == "warm"
        proxy.hold()
        started = reactor().seconds()
        stalled = [conn.script(echo, (), ("stalled-1",)), conn.script(echo, (), ("stalled-2",))]
        for d in stalled:
            with pytest.raises(StoreUnavailable, match="no reply within"):
                await d
        assert 0.3 <= reactor().seconds() - started < 2.0
        proxy.release()
        assert await conn.script(echo, (), ("after",)) == "after"
    finally:
        proxy.release()
        await conn.close()
        await proxy.close()


@pytest_twisted.ensureDeferred
async def test_url_database_and_password_are_used(tmp_path):
    """SELECT from the URL's path and AUTH from its password are sent before the first call;
    a wrong password fails the call with StoreUnavailable instead of running it unauthenticated."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    sync = redis.Redis(host=server.host, port=server.port)
    sync.config_set("requirepass", "s3cret")
    good = lane_conn(f"redis://:s3cret@{server.host}:{server.port}/3")
    bad = lane_conn(f"redis://:wrong@{server.host}:{server.port}/3")
    try:
        await good.script(LuaScript("return redis.call('SET', KEYS[1], ARGV[1])"), ("k",), ("v",))
        authed = redis.Redis(host=server.host, port=server.port, db=3, password="s3cret")
        assert authed.get("k") == b"v"
        authed.close()
        with pytest.raises(StoreUnavailable, match="handshake refused"):
            await bad.script(LuaScript("return 1"), (), ())
    finally:
        await good.close()
        await bad.close()
        sync.close()
        server.stop()


@pytest_twisted.ensureDeferred
async def test_same_connection_object_survives_a_redis_kill_and_restart(tmp_path):
    """redis-server SIGKILLed under an open lane: the next call fails with StoreUnavailable
    (lost or refused, never a hang), and after the restart on the same port and AOF the lane
    reconnects by itself and reads what was written before the kill."""
    from twisted.internet.task import deferLater
    server = EmbeddedRedis(tmp_path / "redis").start()
    conn = lane_conn(server.url, timeout=1.0)
    setter = LuaScript("return redis.call('SET', KEYS[1], ARGV[1])")
    getter = LuaScript("return redis.call('GET', KEYS[1])")
    try:
        assert await conn.script(setter, ("kept",), ("yes",)) == "OK"
        await deferLater(reactor(), 1.2, lambda: None)   # appendfsync everysec
        server.kill()
        with pytest.raises(StoreUnavailable):
            await conn.script(getter, ("kept",), ())
        server.start()          # the same data dir and port (this process holds the lock)
        assert await conn.script(getter, ("kept",), ()) == "yes"
    finally:
        await conn.close()
        server.stop()


@pytest_twisted.ensureDeferred
async def test_requests_of_one_reactor_turn_leave_in_one_write(redis_url):
    """Fifty scripts requested in the same reactor turn (fifty calls progressing together)
    reach Redis as one write: redis-server counts at most two reads for them (its reads are
    counted in INFO stats total_reads_processed), not fifty."""
    conn = lane_conn(redis_url)
    echo = LuaScript("return ARGV[1]")
    sync = redis.Redis.from_url(redis_url)
    try:
        await conn.script(echo, (), ("connect",))      # connection and script cache ready
        reads = sync.info("stats")["total_reads_processed"]
        results = await DeferredList([conn.script(echo, (), (str(i),)) for i in range(50)],
                                     fireOnOneErrback=True)
        assert [value for _, value in results] == [str(i) for i in range(50)]
        # The INFO request itself is one read on the other connection.
        assert sync.info("stats")["total_reads_processed"] - reads <= 1 + 2
    finally:
        sync.close()
        await conn.close()


@pytest_twisted.ensureDeferred
async def test_unix_socket_url_takes_the_lane(tmp_path):
    """unix:///path?db=N (redis-server's `unixsocket`) goes over the lane too, with SELECT."""
    import shutil
    import subprocess
    from twisted.internet.task import deferLater
    sock = tmp_path / "redis.sock"
    server = subprocess.Popen([shutil.which("redis-server"), "--port", "0", "--unixsocket",
                               str(sock), "--save", "", "--appendonly", "no", "--dir",
                               str(tmp_path)], stdout=subprocess.DEVNULL)
    conn = None
    try:
        for _ in range(100):
            if sock.exists():
                break
            await deferLater(reactor(), 0.05, lambda: None)
        conn = lane_conn(f"unix://{sock}?db=4")
        assert conn._lane is not None
        await conn.script(LuaScript("return redis.call('SET', KEYS[1], ARGV[1])"), ("u",), ("1",))
        check = redis.Redis(unix_socket_path=str(sock), db=4)
        assert check.get("u") == b"1"
        check.close()
    finally:
        if conn is not None:
            await conn.close()
        server.terminate()
        server.wait(5)
