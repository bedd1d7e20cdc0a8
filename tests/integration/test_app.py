"""The engine as `ccengine run` wires it: Redis resolution with the embedded default, every
feature built, and every AGI script the dialplans call served by a route."""
import re
from pathlib import Path

import redis
from twisted.internet import reactor

from ccengine import app
from ccengine.config import parse_config

ROOT = Path(__file__).resolve().parents[2]


def dialplan_scripts() -> set[str]:
    """AGI scripts named in dialplans/: literal `agi://.../<script>` and the agent feature
    codes' `Set(CCENGINE_AGENT_SCRIPT=<script>)`."""
    text = "\n".join(p.read_text("utf-8") for p in (ROOT / "dialplans").glob("*.conf"))
    literal = set(re.findall(r"agi://\$\{GLOBAL\(CCENGINE_AGI\)\}/([a-z0-9-]+)", text))
    indirect = set(re.findall(r"Set\(CCENGINE_AGENT_SCRIPT=([a-z0-9-]+)\)", text))
    return literal | indirect


def test_every_agi_script_of_the_dialplans_has_a_route(tmp_path, redis_url):
    """A script the dialplan calls but the engine does not serve would send every such call
    to the fallback: each one is routed by the fully wired engine."""
    config = parse_config({"engine": {"state_dir": str(tmp_path)}})
    top, ctx = app.build_service(config, reactor, redis_url)
    factory = app.fastagi_factory(top)
    scripts = dialplan_scripts()
    assert {"hotline", "queue-announce", "agent-login", "escalate", "survey"} <= scripts
    assert scripts - set(factory.routes) == set()


def test_embedded_redis_is_started_under_the_state_dir_when_none_answers(tmp_path, monkeypatch):
    """No redis.url and nothing on 127.0.0.1:6379: a private redis-server with AOF starts under
    <state_dir>/redis, its URL recorded for the CLI, and it stops cleanly."""
    from ccengine.store import embedded
    real = embedded.redis_answers
    monkeypatch.setattr(embedded, "redis_answers",
                        lambda host, port, timeout=0.5: port != 6379 and real(host, port, timeout))
    config = parse_config({"engine": {"state_dir": str(tmp_path)}})
    url, embedded = app.resolve_redis(config)
    try:
        assert embedded is not None and url == embedded.url
        assert embedded.data_dir == tmp_path / "redis"
        assert (tmp_path / "redis" / "url").read_text().strip() == url
        r = redis.Redis.from_url(url, decode_responses=True)
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        r.close()
    finally:
        embedded.stop()
    assert not (tmp_path / "redis" / "url").exists()


def test_configured_redis_url_is_used_as_is():
    """A configured redis.url is used without probing or starting anything."""
    config = parse_config({"redis": {"url": "redis://10.0.0.5:6380/2"}})
    assert app.resolve_redis(config, embedded_factory=_never) == ("redis://10.0.0.5:6380/2", None)


def _never(*args, **kwargs):
    raise AssertionError("no redis-server may be started when redis.url is configured")


def test_language_routing_reads_the_same_staffing_as_the_wait_estimate(tmp_path, redis_url):
    """The hotline's language routing asks the queue picture (ccengine/queues/) that the wait
    estimate divides by: the one count of staffing agents in the engine."""
    config = parse_config({"engine": {"state_dir": str(tmp_path)}})
    top, ctx = app.build_service(config, reactor, redis_url)
    routes = app.fastagi_factory(top).routes
    availability = routes["hotline"].availability
    assert availability.__self__ is routes["queue-announce"].p.picture
    assert availability("inbound") is None                 # nothing known before AMI syncs


def test_engine_shutdown_waits_for_the_hotlines_pending_record_writes(tmp_path, redis_url):
    """The hotline writes call records after the session ends; the writes it leaves pending
    are a service of the engine, so stopping the engine waits for them."""
    from twisted.internet.defer import Deferred
    from ccengine.runtime.pending import PendingWrites
    config = parse_config({"engine": {"state_dir": str(tmp_path)}})
    top, ctx = app.build_service(config, reactor, redis_url)
    factory = app.fastagi_factory(top)
    writes = factory.routes["hotline"].writes
    assert isinstance(writes, PendingWrites) and writes in list(top)
    write: Deferred = Deferred()
    writes.add(write)
    writes.startService()
    stopping = writes.stopService()
    assert not stopping.called
    write.callback(None)
    assert stopping.called


def test_startup_heap_is_frozen_and_later_garbage_still_collected():
    """tune_garbage_collector (called by `ccengine run` after start-up) takes every object alive
    at start-up out of the collector (gc.get_freeze_count) and sets the engine's thresholds,
    while a reference cycle made after it is still found by a full collection."""
    import gc
    thresholds = gc.get_threshold()
    try:
        app.tune_garbage_collector()
        assert gc.get_threshold() == app.GC_THRESHOLD
        frozen = gc.get_freeze_count()
        assert frozen > 1000     # modules, config, metrics: far more than a handful

        import weakref

        class Cycle:
            pass
        a, b = Cycle(), Cycle()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
        assert alive() is not None       # a cycle: reference counting alone cannot free it
        gc.collect()
        assert alive() is None
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_http_index_quiet_access_log_and_named_ami_retries(tmp_path, redis_url):
    """`/` and `/api` list what exists; /metrics and /healthz are not in the access log; AMI
    connection failures name the server and the reason (a real engine process, AMI port closed)."""
    import json
    import subprocess
    import sys
    import time
    import urllib.request
    from ccengine.store.embedded import free_port
    http, ami = free_port(), free_port()
    config = tmp_path / "c.toml"
    config.write_text(f'[redis]\nurl = "{redis_url}"\n[http]\nport = {http}\n'
                      f'[fastagi]\nport = {free_port()}\n[ami]\nport = {ami}\n'
                      'reconnect_initial = 0.1\nreconnect_max = 0.2\n', encoding="utf-8")
    log = tmp_path / "engine.log"
    engine = subprocess.Popen([sys.executable, "-m", "ccengine.cli", "run", "--config",
                               str(config)], stdout=log.open("w"), stderr=subprocess.STDOUT,
                              env={**__import__("os").environ, "CCENGINE_AMI_SECRET": "x"},
                              cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/", timeout=1) as answer:
                    index = json.loads(answer.read())
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert index["resources"] == ["/api", "/console", "/healthz", "/metrics"]
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/api", timeout=2) as answer:
            assert json.loads(answer.read()) == {"resources": ["/api/complaints"]}
            # issue 19 point 9: no server version; JSON (customer names) is not sniffed.
            assert answer.headers.get("Server") is None
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
        for path in ("/metrics", "/metrics", "/console"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=2).read()
            except OSError:
                pass          # /healthz answers 503 without AMI; only the log matters here
        time.sleep(1.0)
    finally:
        engine.terminate()
        engine.wait(20)
    text = log.read_text()
    assert '"GET /console HTTP/1.1"' in text and '"GET /metrics' not in text
    assert f"AMI 127.0.0.1:{ami}: cannot connect: Connection was refused" in text
    assert f"to connect AMI server 127.0.0.1:{ami} in" in text
    assert "TCP4ClientEndpoint object" not in text
