"""A private redis-server child process: the embedded default and the test fixture.

Started on a free loopback port with AOF on (appendfsync everysec) and its data in a
directory of ours, so that acknowledged callbacks and tickets survive a restart.
This is process management, not request handling: it blocks briefly while the child
starts and is only called before the reactor runs (or from test fixtures).
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


URL_FILE = "url"     # in data_dir while the server runs: its redis:// URL
LOCK_FILE = "lock"   # in data_dir: flock()ed by the engine that owns the directory
PID_FILE = "redis.pid"   # redis-server's own pid file
PR_SET_PDEATHSIG = 1     # linux/prctl.h


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the engine dies, however it dies (SIGKILL
    included), so no redis-server outlives its engine (prctl(2), PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass            # not Linux: the pid-file check at the next start still finds an orphan


def _running_redis(pid_file: Path) -> int | None:
    """The pid in redis-server's pid file if that process is still a redis-server."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"redis-server" in cmdline else None


class EmbeddedRedisError(RuntimeError):
    """redis-server is missing or did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def redis_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something on host:port answers a Redis PING with +PONG."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class EmbeddedRedis:
    """One redis-server per data directory: the directory is locked (flock) by the process that
    started it, for as long as that process lives. A second engine on the same state dir is
    refused; a redis-server left running on the directory by an engine that is gone (an orphan)
    is refused too, with its pid, rather than started twice on the same AOF."""
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen | None = None
    _lock: int | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        exe = shutil.which("redis-server")
        if exe is None:
            raise EmbeddedRedisError(
                "redis-server not found: install the Debian package redis-server "
                "(bash scripts/install.sh does it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._lock is None:          # a restart after kill() keeps the lock it holds
            self._take_lock()
        orphan = _running_redis(self.data_dir / PID_FILE)
        if orphan is not None:
            self._release_lock()
            raise EmbeddedRedisError(
                f"a redis-server (pid {orphan}) is still running on {self.data_dir}, left by an "
                f"engine that is gone; stop it (kill {orphan}) and start again")
        if not self.port:
            self.port = free_port(self.host)
        args = [
            exe, "--bind", self.host, "--port", str(self.port),
            "--dir", str(self.data_dir), "--appendonly", "yes",
            "--appendfsync", "everysec", "--save", "",
            "--protected-mode", "yes", "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            "--pidfile", str(self.data_dir / PID_FILE),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._release_lock()
                raise EmbeddedRedisError(
                    f"redis-server exited with {self.process.returncode}; see {self.data_dir}/redis.log")
            if redis_answers(self.host, self.port, 0.2):
                # Recorded so that the CLI finds the engine's private Redis (cli/support.py).
                (self.data_dir / URL_FILE).write_text(self.url + "\n", encoding="utf-8")
                return self
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer on {self.host}:{self.port}")

    def kill(self) -> None:
        """SIGKILL, as a crash would (reliability tests)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def stop(self) -> None:
        if self._lock is not None:       # the url file is ours only while we hold the lock
            (self.data_dir / URL_FILE).unlink(missing_ok=True)
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        self._release_lock()

    def _take_lock(self) -> None:
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise EmbeddedRedisError(
                f"{self.data_dir} is in use by another engine (pid {holder}); give each engine "
                "its own engine.state_dir, or let them share a Redis with redis.url") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.set_inheritable(fd, False)
        self._lock = fd

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)      # closing the descriptor releases the flock
            self._lock = None


def ensure_env_path() -> None:
    """Debian puts redis-server in /usr/bin; make sure a minimal PATH still finds it."""
    if "/usr/bin" not in os.environ.get("PATH", "").split(":"):
        os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/bin"
