"""Every command follows cli/output.py's conventions (subprocesses, real Redis): exit codes,
sentences instead of tracebacks, quiet on a closed pipe, non-interactive secrets."""
from __future__ import annotations

import subprocess
import sys

import redis

from ccengine.agents.directory import verify_pin


def ccengine(redis_url, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "ccengine.cli", *args, "--redis-url", redis_url],
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_agents_add_without_a_terminal_says_how_and_reads_the_pin_from_stdin_or_a_file(
        redis_url, tmp_path):
    done = ccengine(redis_url, "agents", "add", "1031", "--queues", "inbound", stdin="")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--pin-stdin" in done.stderr
    done = ccengine(redis_url, "agents", "add", "1031", "--queues", "inbound", "--pin-stdin",
                    stdin="4711\n")
    assert done.returncode == 0, done.stderr
    (tmp_path / "pin").write_text("8642\n")
    done = ccengine(redis_url, "agents", "set-pin", "1031", "--pin-file", str(tmp_path / "pin"))
    assert done.returncode == 0, done.stderr
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert verify_pin("8642", r.hget("cc:agent:1031", "pin"))
    r.close()


def test_a_closed_pipe_ends_a_listing_quietly(redis_url):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.sadd("cc:blocklist", *[f"1390000{i:04d}" for i in range(3000)])
    r.close()
    done = subprocess.run(f"{sys.executable} -m ccengine.cli callers list --redis-url "
                          f"{redis_url} | head -1", shell=True, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout == "number\ttier\tname\tlanguage\tblocked\n"
    assert done.stderr == ""


def test_a_missing_input_file_is_one_sentence(redis_url, tmp_path):
    done = ccengine(redis_url, "callers", "import", "vip", str(tmp_path / "nope.csv"))
    assert done.returncode == 2
    assert done.stderr.startswith("ccengine callers: cannot read ") and "Errno" not in done.stderr


def test_redis_unreachable_is_exit_3(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ccengine.cli", "agents", "list",
                           "--redis-url", "redis://127.0.0.1:1/0"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 3 and "Redis is unreachable" in done.stderr
