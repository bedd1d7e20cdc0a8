"""`ccengine complaints ...` commands against a real redis-server (run in a subprocess, as an
admin would, so that the CLI's own asyncio loop is used)."""
import json
import subprocess
import sys

import redis

SCRIPT = """
import argparse, sys
from ccengine.cli import _config_arg
from ccengine.complaints import cli
parser = argparse.ArgumentParser(prog="ccengine")
sub = parser.add_subparsers(dest="command", required=True)
cli.register(sub, _config_arg)
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def ccengine(*argv):
    done = subprocess.run([sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True,
                          timeout=60)
    return done.returncode, done.stdout, done.stderr


def seed(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.hset("cc:complaint:1", mapping={"id": "1", "number": "13800000001", "state": "open",
                                      "level": "agent", "opened": "1000", "deadline": "87400",
                                      "updated": "1000"})
    r.zadd("cc:complaints:all", {"1": 1000})
    r.zadd("cc:complaints:open", {"1": 87400})
    r.close()


def test_list_assign_resolve_show_and_refusals(redis_url):
    """The CLI lists, assigns and resolves through the same checks as the API, and refuses bad input."""
    seed(redis_url)
    url = ["--redis-url", redis_url]
    code, out, _ = ccengine("complaints", "list", *url, "--json")
    assert code == 0 and [t["id"] for t in json.loads(out)] == ["1"]
    assert ccengine("complaints", "assign", "1", "1005", *url)[0] == 0
    code, out, _ = ccengine("complaints", "resolve", "1", "refund granted", *url, "--json")
    assert code == 0 and json.loads(out)["state"] == "resolved"
    code, _, err = ccengine("complaints", "resolve", "1", "again", *url)
    assert code == 2 and "resolved" in err
    code, _, err = ccengine("complaints", "assign", "1", "bad owner", *url)
    assert code == 2 and "owner" in err
    code, _, err = ccengine("complaints", "show", "99", *url)
    assert code == 2 and err == "ccengine complaints: no ticket 99\n"
    code, out, _ = ccengine("complaints", "show", "1", *url)
    assert code == 0 and "resolved" in out and "followup_scheduled" in out
