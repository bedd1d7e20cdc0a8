"""`ccengine users ...` against a real redis-server: accounts for the console."""
import argparse
import io
import sys

import redis

from ccengine.cli import _config_arg
from ccengine.console import cli as users_cli
from ccengine.console.accounts import verify_password


def run(*argv, stdin=""):
    parser = argparse.ArgumentParser()
    users_cli.register(parser.add_subparsers(dest="command", required=True), _config_arg)
    args = parser.parse_args(["users", *argv])
    saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        return args.func(args)
    finally:
        sys.stdin = saved


def test_add_list_set_password_and_remove(redis_url, capsys):
    url = ("--redis-url", redis_url)
    assert run("add", "li.na", "--role", "supervisor", "--phone", "2001", "--display", "Li Na",
               "--password-stdin", *url, stdin="correct horse\n") == 0
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    stored = r.hgetall("cc:console:user:li.na")
    assert stored["role"] == "supervisor" and stored["phone"] == "2001"
    assert stored["password"].startswith("$argon2id$") and "correct horse" not in stored["password"]
    assert verify_password("correct horse", stored["password"])
    # Refusals: exit 2, a message, nothing changed.
    assert run("add", "li.na", "--role", "supervisor", "--password-stdin", *url,
               stdin="another pass\n") == 2
    assert run("add", "Bad Name", "--role", "operations", "--password-stdin", *url,
               stdin="long enough pw\n") == 2
    assert run("add", "wu", "--role", "operations", "--password-stdin", *url,
               stdin="short\n") == 2
    assert run("add", "wu", "--role", "operations", "--phone", "1;2", "--password-stdin", *url,
               stdin="long enough pw\n") == 2
    errors = capsys.readouterr().err                      # each message says what is wanted
    for wanted in ("user li.na exists", "user name: a lower-case letter",
                   "password: at least 10 characters", "phone: the PJSIP endpoint name"):
        assert wanted in errors
    assert run("set-password", "li.na", "--password-stdin", *url, stdin="new password!\n") == 0
    assert verify_password("new password!", r.hget("cc:console:user:li.na", "password"))
    assert run("set-password", "nobody", "--password-stdin", *url, stdin="new password!\n") == 2
    capsys.readouterr()
    assert run("list", *url) == 0
    assert capsys.readouterr().out == "user\trole\tphone\tdisplay\nli.na\tsupervisor\t2001\tLi Na\n"
    assert run("remove", "li.na", *url) == 0
    assert not r.exists("cc:console:user:li.na") and not r.sismember("cc:console:users", "li.na")
    assert run("remove", "li.na", *url) == 2
    r.close()
