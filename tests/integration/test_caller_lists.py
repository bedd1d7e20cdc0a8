"""Caller lists: files loaded at engine start and the `ccengine callers` CLI, on real Redis."""
import subprocess
import sys

import pytest_twisted
import redis

from ccengine.calls.feature import CallerListsLoader
from ccengine.calls.sources import read_list
from ccengine.config import parse_config
from ccengine.store.base import RedisConnection
from ccengine.calls.customers import CustomerStore


def test_bad_lines_are_reported_with_their_line_numbers_and_skipped(tmp_path):
    """A typo in one line is named and skipped; the other lines still load."""
    path = tmp_path / "vip.csv"
    path.write_text("# VIPs\n13800000001,Li Lei\nnot-a-number,X\n\n+8613800000002\n"
                    "13800000003,bad\x0bname\n")
    parsed = read_list(path, with_names=True)
    assert parsed.entries == [("13800000001", "Li Lei"), ("+8613800000002", "")]
    assert parsed.problems == [f"{path}:3: not a phone number: 'not-a-number'",
                               f"{path}:6: name has control characters"]


@pytest_twisted.ensureDeferred
async def test_configured_files_are_loaded_into_redis_at_start(redis_url, tmp_path):
    """callers.blocklist_file and callers.vip_file reach Redis when the engine starts, and a
    VIP keeps the language preference it already had."""
    (tmp_path / "block.txt").write_text("13900000000\n13900000001 # nuisance\n")
    (tmp_path / "vip.csv").write_text("13800000001,李雷\n")
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    sync.hset("cc:customer:13800000001", "language", "en")
    config = parse_config({"callers": {"blocklist_file": str(tmp_path / "block.txt"),
                                       "vip_file": str(tmp_path / "vip.csv")}})
    conn = RedisConnection(redis_url)
    loader = CallerListsLoader(config.callers, CustomerStore(conn))
    loader.startService()
    assert await loader.done == {"blocklist": 2, "vip": 1}
    assert sync.smembers("cc:blocklist") == {"13900000000", "13900000001"}
    assert sync.hgetall("cc:customer:13800000001") == {"tier": "vip", "name": "李雷", "language": "en"}
    profile = await CustomerStore(conn).lookup("13800000001")
    assert (profile.tier, profile.name, profile.language) == ("vip", "李雷", "en")
    sync.close()
    await conn.close()


def ccengine(redis_url, *args):
    return subprocess.run([sys.executable, "-m", "ccengine.cli", *args, "--redis-url", redis_url],
                          capture_output=True, text=True, timeout=60)


def test_callers_cli_blocks_adds_vips_and_refuses_hostile_numbers(redis_url, tmp_path):
    """Admins block and unblock numbers and add VIPs from the CLI; a hostile number is refused
    with exit code 2 and nothing is written."""
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    assert ccengine(redis_url, "callers", "block", "13900000000").returncode == 0
    assert ccengine(redis_url, "callers", "add", "13800000001", "--name", "Han Meimei",
                    "--vip", "--language", "en").returncode == 0
    assert sync.sismember("cc:blocklist", "13900000000")
    assert sync.hgetall("cc:customer:13800000001") == {"name": "Han Meimei", "tier": "vip",
                                                       "language": "en"}
    bad = ccengine(redis_url, "callers", "block", "123&PJSIP/x")
    assert bad.returncode == 2 and "not a phone number" in bad.stderr
    assert ccengine(redis_url, "callers", "unblock", "13900000000").returncode == 0
    assert not sync.sismember("cc:blocklist", "13900000000")
    assert ccengine(redis_url, "callers", "add", "13800000002", "--name", "Li Lei").returncode == 0
    listing = ccengine(redis_url, "callers", "list")
    # Known customers are listed too, with a header line.
    assert listing.stdout == ("number\ttier\tname\tlanguage\tblocked\n"
                              "13800000001\tvip\tHan Meimei\ten\tno\n"
                              "13800000002\tknown\tLi Lei\t-\tno\n")
    (tmp_path / "block.txt").write_text("13900000005\nbad\n")
    imported = ccengine(redis_url, "callers", "import", "blocklist", str(tmp_path / "block.txt"))
    # The good line is loaded; the refused one makes the exit 1 ("problems in the input").
    assert imported.returncode == 1 and "1 blocklist entry loaded" in imported.stdout
    assert "bad" in imported.stderr
    assert sync.smembers("cc:blocklist") == {"13900000005"}
    sync.close()


def test_cli_finds_the_engines_private_redis_server(tmp_path):
    """With no redis.url configured, the CLI uses the redis-server the engine started under its
    state directory (the embedded default), not a Redis on 6379 that is not there."""
    from ccengine.store.embedded import EmbeddedRedis
    state = tmp_path / "state"
    config = tmp_path / "c.toml"
    config.write_text(f'[engine]\nstate_dir = "{state}"\n')
    server = EmbeddedRedis(state / "redis").start()
    try:
        done = subprocess.run([sys.executable, "-m", "ccengine.cli", "callers", "block",
                               "13900000077", "--config", str(config)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        r = redis.Redis(host=server.host, port=server.port, decode_responses=True)
        assert r.sismember("cc:blocklist", "13900000077")
        r.close()
    finally:
        server.stop()
    assert not (state / "redis" / "url").exists()
