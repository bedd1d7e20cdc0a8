"""`ccengine agents ...` against a real redis-server (synchronous client, no reactor)."""
import argparse

import redis

from ccengine.agents import cli as agents_cli
from ccengine.agents.directory import verify_pin
from ccengine.cli import _config_arg


def run(*argv):
    parser = argparse.ArgumentParser()
    agents_cli.register(parser.add_subparsers(dest="command", required=True), _config_arg)
    args = parser.parse_args(["agents", *argv])
    return args.func(args)


def test_add_list_set_pin_set_queues_status_and_remove(redis_url, capsys):
    """The admin commands keep the directory in Redis, store the PIN hashed, and refuse to remove
    a logged-in agent; status prints the live state per queue."""
    url = ("--redis-url", redis_url)
    assert run("add", "1023", "--queues", "inbound:0,complaint:2", "--languages", "zh",
               "--name", "Li Lei", "--pin", "4321", *url) == 0
    assert run("add", "1023", "--queues", "inbound", "--pin", "4321", *url) == 2
    assert run("add", "1099", "--queues", "nosuch", "--pin", "4321", *url) == 2
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    stored = r.hgetall("cc:agent:1023")
    assert "4321" not in stored["pin"] and verify_pin("4321", stored["pin"])
    r.set("cc:agent:lock:1023", "1", ex=300)
    assert run("set-pin", "1023", "--pin", "8765", *url) == 0
    assert verify_pin("8765", r.hget("cc:agent:1023", "pin")) and not r.exists("cc:agent:lock:1023")
    assert run("set-queues", "1023", "--queues", "inbound:3", *url) == 0
    assert r.hget("cc:agent:1023", "queues") == '{"inbound": 3}'
    r.sadd("cc:agents:logged_in", "1023")
    r.hset("cc:agent:session:1023", mapping={"phone": "1003", "interface": "PJSIP/1003",
                                            "since": "0", "queues": '{"inbound": 3}'})
    r.hset("cc:agent:state:1023", "inbound", '{"state": "paused", "reason": "meal", "since": 0}')
    capsys.readouterr()
    assert run("list", *url) == 0 and "1023\tinbound:3\tzh\tlogged in\tLi Lei" in capsys.readouterr().out
    assert run("status", *url) == 0
    assert capsys.readouterr().out == ("agent\tphone\tqueue\tstate\treason\tsince\n"
                                       "1023\t1003\tinbound\tpaused\tmeal\t-\n")
    assert run("remove", "1023", *url) == 2
    assert run("allow-pause", "1023", "--minutes", "5", *url) == 0
    assert 0 < r.ttl("cc:agent:pauseok:1023") <= 300
    r.srem("cc:agents:logged_in", "1023")
    assert run("remove", "1023", *url) == 0
    assert not r.exists("cc:agent:1023") and not r.sismember("cc:agents", "1023")
    # Not found is a usage error (2) like set-pin's, with a sentence; empty lists say so.
    capsys.readouterr()
    assert run("remove", "1023", *url) == 2 and "no agent 1023" in capsys.readouterr().err
    assert run("set-pin", "1023", "--pin", "1111", *url) == 2
    capsys.readouterr()
    assert run("list", *url) == 0 and capsys.readouterr().out == \
        "agent\tqueues\tlanguages\tlogin\tname\n(none)\n"
    assert run("status", "--json", *url) == 0 and capsys.readouterr().out == "[]\n"
