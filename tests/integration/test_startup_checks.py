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


def engine_config(tmp_path, state):
    config = tmp_path / f"c{free_port()}.toml"
    config.write_text(f'[engine]\nstate_dir = "{state}"\n[http]\nport = {free_port()}\n'
                      f'[fastagi]\nport = {free_port()}\n', encoding="utf-8")
    return config


def wait_for_url_file(state, proc, timeout=20.0):
    import time
    deadline = time.monotonic() + timeout
    url = state / "redis" / "url"
    while not url.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "engine did not start"
        time.sleep(0.1)
    return url.read_text().strip()


def test_a_second_engine_on_the_same_state_dir_is_refused_and_changes_nothing(tmp_path):
    """issue 19 point 1: one private redis-server per state dir. The second engine (other
    ports) is refused with a sentence, starts no redis-server, and the url file still names
    the first engine's Redis, which the CLI then writes to."""
    import signal
    state = tmp_path / "state"
    first = subprocess.Popen([sys.executable, "-m", "ccengine.cli", "run", "--config",
                              str(engine_config(tmp_path, state))], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = wait_for_url_file(state, first)
        second = ccengine("run", "--config", str(engine_config(tmp_path, state)), cwd=tmp_path)
        out = second.stdout + second.stderr
        assert second.returncode == 2 and "is in use by another engine" in out, out
        assert "Traceback" not in out
        assert len(redis_servers_in(tmp_path)) == 1
        assert (state / "redis" / "url").read_text().strip() == url
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(20)
    assert redis_servers_in(tmp_path) == []


def test_the_private_redis_dies_with_a_killed_engine_and_an_orphan_is_refused(tmp_path):
    """SIGKILL of the engine takes its redis-server with it (parent-death signal); a
    redis-server left on the data dir some other way is refused by name, not doubled."""
    import signal
    import time
    state = tmp_path / "state"
    engine = subprocess.Popen([sys.executable, "-m", "ccengine.cli", "run", "--config",
                               str(engine_config(tmp_path, state))], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_url_file(state, engine)
    assert len(redis_servers_in(tmp_path)) == 1
    engine.send_signal(signal.SIGKILL)
    engine.wait(10)
    deadline = time.monotonic() + 10
    while redis_servers_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_servers_in(tmp_path) == []
    # An orphan: a redis-server on the data dir that no engine holds (started by hand here).
    data = state / "redis"
    orphan = subprocess.Popen(["redis-server", "--port", str(free_port()), "--dir", str(data),
                               "--pidfile", str(data / "redis.pid"), "--appendonly", "yes"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (data / "redis.pid").exists():
            time.sleep(0.05)
        done = ccengine("run", "--config", str(engine_config(tmp_path, state)), cwd=tmp_path)
        out = done.stdout + done.stderr
        assert done.returncode == 2 and f"(pid {orphan.pid}) is still running" in out, out
        assert redis_servers_in(tmp_path) == [str(orphan.pid)]
    finally:
        orphan.terminate()
        orphan.wait(10)


def test_an_unusable_state_dir_is_one_line(tmp_path):
    """issue 19 point 9: a state dir that cannot be created gave a raw OSError traceback."""
    (tmp_path / "a-file").write_text("not a directory")
    config = tmp_path / "c.toml"
    config.write_text(f'[engine]\nstate_dir = "{tmp_path / "a-file" / "state"}"\n'
                      f'[http]\nport = {free_port()}\n[fastagi]\nport = {free_port()}\n',
                      encoding="utf-8")
    done = ccengine("run", "--config", str(config), cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 2 and "cannot start" in out and "Traceback" not in out, out
