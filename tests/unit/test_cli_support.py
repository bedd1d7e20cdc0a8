"""The shared CLI runner: exit codes and messages every feature's CLI relies on."""
import argparse

from ccengine.cli.support import store_command, wait


class Refused(ValueError):
    pass


def test_config_user_and_redis_errors_get_their_exit_codes(tmp_path, capsys):
    """A broken configuration or a refused input exits 2, an unreachable Redis 3, each with a
    message naming the command group; success returns the command's own code."""
    @store_command("demo", (Refused,))
    async def refuse(args, conn, config):
        raise Refused("number not allowed")

    @store_command("demo")
    async def ping(args, conn, config):
        await wait(conn.ping())
        return 0

    missing = argparse.Namespace(config=str(tmp_path / "none.toml"), redis_url=None)
    good = argparse.Namespace(config=None, redis_url="redis://127.0.0.1:1/0")
    assert refuse(missing) == 2
    assert "ccengine demo: " in capsys.readouterr().err
    assert refuse(good) == 2
    assert "ccengine demo: number not allowed" in capsys.readouterr().err
    assert ping(good) == 3
    assert "ccengine demo: Redis is unreachable: " in capsys.readouterr().err


def test_a_store_command_runs_on_the_engines_stores(redis_url):
    """Success: the command's own exit code, its writes visible to another client."""
    import redis

    from ccengine.calls.customers import CustomerStore

    @store_command("demo")
    async def block(args, conn, config):
        return await wait(CustomerStore(conn).block(["13900000001"]))

    assert block(argparse.Namespace(config=None, redis_url=redis_url)) == 1
    assert redis.Redis.from_url(redis_url).sismember("cc:blocklist", "13900000001")


def test_redis_url_can_come_from_the_environment_not_the_command_line(monkeypatch):
    """issue 19 point 9: a Redis URL with a password need not be in argv (visible in `ps`)."""
    import argparse as _argparse
    from ccengine.cli.support import redis_url
    from ccengine.config import load_config
    monkeypatch.setenv("CCENGINE_REDIS_URL", "redis://:s3cret@127.0.0.1:6390/0")
    args = _argparse.Namespace(redis_url=None)
    assert redis_url(args, load_config(None)) == "redis://:s3cret@127.0.0.1:6390/0"
    assert redis_url(_argparse.Namespace(redis_url="redis://x:1/0"), load_config(None)) == \
        "redis://x:1/0"
