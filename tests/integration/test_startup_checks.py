"""check-config runs every check `run` runs, and a failed start is one line (subprocesses)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from ccengine.store.embedded import free_port

BROKEN = """
[company]
timezone = "Mars/Olympus"
[fastagi]
command_timeout = -1
port = {port}
[http]
port = {port}
[ivr]
menu_tries = "three"
[prompts.welcome]
zh = "欢迎 {{company}} {{x}}"
en = "Welcome"
"""


def ccengine(*args, cwd=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "ccengine.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def test_check_config_reports_every_problem_in_one_pass(tmp_path):
    config = tmp_path / "broken.toml"
    config.write_text(BROKEN.format(port=free_port()), encoding="utf-8")
    done = ccengine("check-config", str(config))
    assert done.returncode == 1
    for problem in ("company.timezone", "fastagi.command_timeout", "ivr.menu_tries",
                    "http.port", "prompts.welcome"):
        assert problem in done.stderr
    assert "5 problem(s) found" in done.stderr
    # run refuses the same file with the same problems, without a traceback.
    started = ccengine("run", "--config", str(config))
    assert started.returncode == 2 and "Traceback" not in started.stderr
    assert "prompts.welcome" in started.stderr


def test_a_port_in_use_is_one_line_and_leaves_nothing_running(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = tmp_path / "c.toml"
    config.write_text(f'[engine]\nstate_dir = "{tmp_path / "state"}"\n[http]\nport = {port}\n'
                      f'[fastagi]\nport = {free_port()}\n', encoding="utf-8")
    try:
        done = ccengine("run", "--config", str(config), cwd=tmp_path)
    finally:
        taken.close()
    assert done.returncode == 2
    out = done.stdout + done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out and "Traceback" not in out
    # The private redis-server the start began with is gone again: no redis-server works in
    # this state directory (redis-server changes into its data directory).
    assert redis_servers_in(tmp_path) == []


def redis_servers_in(folder) -> list[str]:
    pids = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True,
                          text=True).stdout.split()
    out = []
    for pid in pids:
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(folder)):
                out.append(pid)
        except OSError:
            pass        # ended meanwhile
    return out


def test_the_leftover_check_sees_a_running_private_redis(tmp_path):
    """The check above can fail: it finds a private redis-server that does run there."""
    from ccengine.store.embedded import EmbeddedRedis
    server = EmbeddedRedis(tmp_path / "state" / "redis").start()
    try:
        assert len(redis_servers_in(tmp_path)) == 1
    finally:
        server.stop()
