"""redis-py's per-connection driver metadata is built once for the engine: every pool
connection shares it, so no new connection reads the package version from importlib.metadata
again (redis-py 8 does that per connection; bench/ami_real.py profiles)."""
from __future__ import annotations

import importlib.metadata

from prometheus_client import CollectorRegistry

from ccengine.store import base


def test_pool_connections_share_one_driver_info(monkeypatch):
    """Two connections of the pool carry the same DriverInfo, with redis-py's name and
    version, and building them reads no package metadata."""
    base.driver_info()          # built once per process, here or earlier
    looked_up = []
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: looked_up.append(name) or real(name))
    conn = base.RedisConnection("redis://127.0.0.1:1/0", 1.0,
                                base.StoreMetrics(CollectorRegistry()), None)
    pool = conn.client.connection_pool
    first, second = pool.make_connection(), pool.make_connection()
    assert first.driver_info is second.driver_info is base.driver_info()
    assert first.driver_info.name == "redis-py"
    assert first.driver_info.lib_version == real("redis")
    assert looked_up == []
