"""The shared CLI runner: exit codes and messages every feature's CLI relies on."""
import argparse

from ccengine.cli.support import redis_command


class Refused(ValueError):
    pass


def test_config_user_and_redis_errors_get_their_exit_codes(tmp_path, capsys):
    """A broken configuration or a refused input exits 2, an unreachable Redis 3, each with a
    message naming the command group; success returns the command's own code."""
    @redis_command("demo", (Refused,))
    def refuse(args, r, config):
        raise Refused("number not allowed")

    @redis_command("demo")
    def ping(args, r, config):
        r.ping()
        return 0

    missing = argparse.Namespace(config=str(tmp_path / "none.toml"), redis_url=None)
    good = argparse.Namespace(config=None, redis_url="redis://127.0.0.1:1/0")
    assert refuse(missing) == 2
    assert "ccengine demo: " in capsys.readouterr().err
    assert refuse(good) == 2
    assert "ccengine demo: number not allowed" in capsys.readouterr().err
    assert ping(good) == 3
    assert "ccengine demo: Redis:" in capsys.readouterr().err

