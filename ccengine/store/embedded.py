"""A private redis-server child process: the embedded default and the test fixture.

Started on a free loopback port with AOF on (appendfsync everysec) and its data in a
directory of ours, so that acknowledged callbacks and tickets survive a restart.
This is process management, not request handling: it blocks briefly while the child
starts and is only called before the reactor runs (or from test fixtures).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


URL_FILE = "url"     # in data_dir while the server runs: its redis:// URL


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
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen | None = None

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
        if not self.port:
            self.port = free_port(self.host)
        args = [
            exe, "--bind", self.host, "--port", str(self.port),
            "--dir", str(self.data_dir), "--appendonly", "yes",
            "--appendfsync", "everysec", "--save", "",
            "--protected-mode", "yes", "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
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
        (self.data_dir / URL_FILE).unlink(missing_ok=True)
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def ensure_env_path() -> None:
    """Debian puts redis-server in /usr/bin; make sure a minimal PATH still finds it."""
    if "/usr/bin" not in os.environ.get("PATH", "").split(":"):
        os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/bin"
