"""issue 19 point 2: the caller lists heal. A real engine process with blocklist and VIP files
on a real redis-server: the lists come back after Redis lost them, are loaded once Redis comes
up after the engine, are reloaded on SIGHUP (which does not stop the engine), and /healthz says
when they are not loaded."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import redis

from ccengine.store.embedded import EmbeddedRedis, free_port
from asterisk_lab import wait_for



def health(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())
    except OSError:
        return {}


def start_engine(tmp_path, redis_port):
    (tmp_path / "block.txt").write_text("13900000001\n", encoding="utf-8")
    (tmp_path / "vip.txt").write_text("13800000001,Li Lei\n", encoding="utf-8")
    http = free_port()
    config = tmp_path / "c.toml"
    config.write_text(
        f'[redis]\nurl = "redis://127.0.0.1:{redis_port}/0"\ntimeout = 0.5\n'
        f'[http]\nport = {http}\n[fastagi]\nport = {free_port()}\n[ami]\nenabled = false\n'
        f'[callers]\nblocklist_file = "{tmp_path / "block.txt"}"\n'
        f'vip_file = "{tmp_path / "vip.txt"}"\n', encoding="utf-8")
    engine = subprocess.Popen([sys.executable, "-m", "ccengine.cli", "run", "--config",
                               str(config)], cwd=tmp_path, stdout=(tmp_path / "log").open("w"),
                              stderr=subprocess.STDOUT, env=dict(os.environ))
    return engine, http


def test_lists_come_back_after_redis_lost_them_and_on_sighup(tmp_path, redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    engine, http = start_engine(tmp_path, r.connection_pool.connection_kwargs["port"])
    try:
        wait_for(lambda: r.sismember("cc:blocklist", "13900000001"), 20, "the first load")
        wait_for(lambda: health(http).get("caller_lists_loaded") is True, 10, "healthz")
        r.flushall()                                        # Redis restarted empty
        wait_for(lambda: r.sismember("cc:blocklist", "13900000001")
                   and r.sismember("cc:vip", "13800000001"), 25, "the lists again")
        # SIGHUP: the files are read again; the engine keeps running.
        (tmp_path / "block.txt").write_text("13900000001\n13900000002\n", encoding="utf-8")
        engine.send_signal(signal.SIGHUP)
        wait_for(lambda: r.sismember("cc:blocklist", "13900000002"), 10, "the reload")
        assert engine.poll() is None
        assert health(http)["fastagi_listening"] is True
    finally:
        engine.terminate()
        engine.wait(20)
        r.close()
    log = (tmp_path / "log").read_text()
    assert "caller lists are gone from Redis" in log and "SIGHUP: reloading" in log


def test_engine_started_before_redis_loads_the_lists_once_redis_is_up(tmp_path):
    port = free_port()
    engine, http = start_engine(tmp_path, port)
    server = None
    try:
        wait_for(lambda: health(http).get("fastagi_listening"), 20, "the engine")
        assert health(http)["caller_lists_loaded"] is False   # degraded, and says why
        server = EmbeddedRedis(tmp_path / "redis", port=port).start()
        r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
        wait_for(lambda: r.sismember("cc:blocklist", "13900000001"), 25, "the lists")
        wait_for(lambda: health(http).get("caller_lists_loaded") is True, 15, "healthz")
        r.close()
    finally:
        engine.terminate()
        engine.wait(20)
        if server is not None:
            server.stop()
