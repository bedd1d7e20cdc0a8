"""issue 19 point 8: call records Redis refuses are spooled to disk and written later.

A real redis-server of its own, made to refuse writes the way the probe saw (maxmemory with
noeviction: `OOM command not allowed`), 30 routed calls through the hotline route, then Redis
takes writes again and the spool is replayed: every record is in Redis, none only in a log."""
from __future__ import annotations

import pytest_twisted
import redis

from agi_harness import ScriptedAsterisk
from engine_context import engine_context, records_for, records_written
from ccengine.calls import feature as calls_feature
from ccengine.config import parse_config
from ccengine.store.embedded import EmbeddedRedis

CALLS = 30


@pytest_twisted.ensureDeferred
async def test_refused_records_are_spooled_and_written_when_redis_takes_writes(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis").start()
    sync = redis.Redis(host=server.host, port=server.port, decode_responses=True)
    try:
        config = parse_config({"engine": {"state_dir": str(tmp_path / "state")}})
        factory, ctx = engine_context(server.url, now=1796210000.0, config=config)
        feature = calls_feature.build(ctx, records=records_for(ctx))
        factory.routes.update(feature.routes)
        spool = next(s for s in feature.services if type(s).__name__ == "RecordSpool")
        used = int(sync.info("memory")["used_memory"])
        sync.config_set("maxmemory-policy", "noeviction")
        sync.config_set("maxmemory", str(used + 1024))
        for i in range(CALLS):
            asterisk = ScriptedAsterisk(factory, None)
            asterisk.dial("hotline", callerid=f"1380000{i:04d}", uniqueid=f"spool-{i}")
            await asterisk.finished
        await records_written(factory)
        refused = sum(1 for i in range(CALLS) if not sync.exists(f"cc:call:spool-{i}"))
        assert refused == CALLS
        assert spool.waiting == CALLS
        assert ctx.registry.get_sample_value("ccengine_call_records_spooled_total") == CALLS
        assert (tmp_path / "state" / "spool" / "call-records.jsonl").exists()
        # Still refusing: the replay keeps every record.
        await spool.replay()
        assert spool.waiting == CALLS
        sync.config_set("maxmemory", "0")                      # Redis takes writes again
        await spool.replay()
        assert spool.waiting == 0
        assert ctx.registry.get_sample_value("ccengine_call_records_spool_pending") == 0
        for i in range(CALLS):
            assert sync.hget(f"cc:call:spool-{i}", "caller") == f"1380000{i:04d}"
        assert sync.zcard("cc:calls") == CALLS
        await ctx.redis.close()
    finally:
        sync.close()
        server.stop()
