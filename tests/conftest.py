"""Shared fixtures: a real redis-server on a free loopback port."""
from __future__ import annotations

import pytest

from ccengine.store.embedded import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server (AOF on) for the whole session; tests flush it via `redis_url`."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """URL of the session redis-server, flushed before each test."""
    import redis
    r = redis.Redis(host=redis_server.host, port=redis_server.port)
    r.flushall()
    r.close()
    return redis_server.url


@pytest.fixture
def floor(tmp_path, redis_url):
    """The console's floor (tests/console_floor.py): engine and AMI replay server processes."""
    from console_floor import Floor
    floor = Floor(tmp_path, redis_url)
    try:
        floor.seed()
        floor.start()
        yield floor
    finally:
        floor.stop()
