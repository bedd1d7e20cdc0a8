"""The console's floor for tests: the real engine process (`ccengine run`) on real Redis,
an AMI server answering with recorded Asterisk 22 messages (tests/ami_server.py), agent 1001
logged in on phone 1001, a VIP caller's call record, and two console accounts (made with
`ccengine users add`). Used by tests/browser/ (Chromium) and tests/integration/test_console_http.py.
`Client` is a browser-like HTTP client of the console (cookies, forms), also for
tests/asterisk/test_console_real.py.

The call events are those of the lab run tests/fixtures/asterisk_lab24/routed_call_agent_free
(a caller joins inbound, agent 1001 rings, answers, hangs up); `stage` and `rest_of_call` cut
them into the steps a test sends.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import http.cookies
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import ami_replay
from ccengine.agents.directory import AgentDirectory, AgentRecord, AgentSession, hash_pin
from ccengine.calls.records import CallRecordStore
from ccengine.cli.support import wait
from ccengine.store.base import RedisConnection
from ccengine.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "tests" / "fixtures" / "asterisk_lab24" / "routed_call_agent_free.ami_stream.raw"
HOSTILE_AGENT = '<script>window.pwned=1</script>张伟'
HOSTILE_CUSTOMER = '<img src=x onerror="window.pwned=2">'
UNIQUEID = "1796219603.1"     # the caller of routed_call_agent_free
SUPERVISOR = ("alice", "alice-password-1")
OPERATIONS = ("olga", "olga-password-12")


def lab_events() -> list:
    """The recorded events of the lab call, as Messages, in order."""
    _, blocks = ami_replay.split_raw(LAB.read_bytes())
    out = []
    for block in blocks:
        message = ami_replay.Message.parse(block.rstrip(b"\r\n"))
        if message.get("Event"):
            out.append(message)
    return out


def stage(events: list, first: str, last: str, uniqueid: str = UNIQUEID) -> list:
    """Events from the first `first` of the call to the first `last` after it, inclusive,
    keeping the member events of PJSIP/1001 in between."""
    start = next(i for i, m in enumerate(events)
                 if m.get("Event") == first and m.get("Uniqueid") == uniqueid)
    end = next(i for i, m in enumerate(events[start:], start)
               if m.get("Event") == last and m.get("Uniqueid") == uniqueid)
    return [m for m in events[start:end + 1]
            if m.get("Uniqueid") == uniqueid or m.get("Interface") == "PJSIP/1001"]


def rest_of_call(events: list, first: str, uniqueid: str = UNIQUEID) -> list:
    """From the first `first` of the call to the end of the capture (call and agent events)."""
    start = next(i for i, m in enumerate(events)
                 if m.get("Event") == first and m.get("Uniqueid") == uniqueid)
    return [m for m in events[start:]
            if m.get("Uniqueid") == uniqueid or m.get("Interface") == "PJSIP/1001"]


class Floor:
    """The engine process, the AMI server process and the data both read."""

    def __init__(self, tmp: Path, redis_url: str):
        self.tmp = tmp
        self.redis_url = redis_url
        self.http = free_port()
        self.actions = tmp / "actions.jsonl"
        self.actions.write_text("")
        self.ami = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "ami_server.py"), "--log", str(self.actions)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.ami_port = int(self.ami.stdout.readline().split()[1])
        self.config = tmp / "ccengine.toml"
        self.config.write_text(f"""
[engine]
state_dir = "{tmp / 'state'}"
[redis]
url = "{redis_url}"
[ami]
port = {self.ami_port}
ping_interval = 300.0
[fastagi]
port = {free_port()}
[http]
port = {self.http}
[console]
push_delay = 0.1
[recordings]
dir = "{tmp / 'recordings'}"
[queues.inbound]
open = "00:00"
close = "23:59:59"
min_available_agents = 1
[queues.complaint]
open = "00:00"
close = "23:59:59"
min_available_agents = 0
""", encoding="utf-8")
        self.env = {**os.environ, "CCENGINE_AMI_SECRET": "replay-secret"}
        self.engine: subprocess.Popen | None = None

    def cli(self, *args: str, stdin: str = "") -> str:
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "ccengine"), *args, "--config",
                               str(self.config)], input=stdin, capture_output=True, text=True,
                              env=self.env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def _redis(self, work) -> None:
        """Run `await work(conn)` on a RedisConnection, in a thread of its own (pytest-twisted
        may be running its asyncio loop in this one)."""
        async def run() -> None:
            conn = RedisConnection(self.redis_url, 2.0)
            try:
                await work(conn)
            finally:
                await conn.aclose()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, run()).result()

    def save_record(self, call_id: str, fields: dict) -> None:
        async def save(conn) -> None:
            await wait(CallRecordStore(conn, 1000, 1).save(call_id, time.time(), fields))
        self._redis(save)

    def seed(self) -> None:
        async def agent(conn) -> None:
            directory = AgentDirectory(conn)
            await wait(directory.add(AgentRecord("1001", {"inbound": 0, "complaint": 0}, ("zh",),
                                                 HOSTILE_AGENT, hash_pin("4826"))))
            assert await wait(directory.claim(AgentSession(
                "1001", "1001", "PJSIP/1001", time.time() - 600,
                {"inbound": 0, "complaint": 0}))) == "ok"
        self._redis(agent)
        self.save_record(UNIQUEID, {
            "started": f"{time.time():.3f}", "caller": "13800138000", "tier": "vip",
            "customer": HOSTILE_CUSTOMER, "language": "zh", "queue": "inbound",
            "category": "order", "outcome": "queued"})
        self.cli("users", "add", SUPERVISOR[0], "--role", "supervisor", "--phone", "2001",
                 "--display", "Alice", "--password-stdin", stdin=SUPERVISOR[1] + "\n")
        self.cli("users", "add", OPERATIONS[0], "--role", "operations", "--password-stdin",
                 stdin=OPERATIONS[1] + "\n")

    def start(self) -> None:
        self.engine = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "ccengine"), "run", "--config", str(self.config)],
            cwd=self.tmp, env=self.env, stdout=(self.tmp / "engine.log").open("w"),
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as answer:
                    if json.loads(answer.read()).get("ami_connected"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("engine not healthy: " + (self.tmp / "engine.log").read_text())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def emit(self, events: list) -> None:
        self.ami.stdin.write(json.dumps([list(m.items()) for m in events]) + "\n")
        self.ami.stdin.flush()

    def sent(self, action: str) -> list[dict]:
        out = []
        for line in self.actions.read_text().splitlines():
            pairs = json.loads(line)
            if pairs and pairs[0] == ["Action", action]:
                out.append(pairs)
        return out

    def stop(self) -> None:
        for process in (self.engine, self.ami):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


@dataclass
class Client:
    """A browser-like client: keeps cookies, sends forms."""
    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict | None = None,
                headers: dict | None = None) -> tuple[int, dict, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        body = urllib.parse.urlencode(form) if form is not None else None
        sent = dict(headers or {})
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=sent)
        answer = conn.getresponse()
        text = answer.read().decode("utf-8", "replace")
        for raw in answer.headers.get_all("Set-Cookie") or []:
            jar = http.cookies.SimpleCookie(raw)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        conn.close()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, text

    def login(self, user: str, password: str) -> int:
        self.request("GET", "/console")
        status, _, _ = self.request("POST", "/console/login", {
            "user": user, "password": password, "csrf": self.cookies.get("cc_login", "")})
        return status

    def csrf(self) -> str:
        _, _, page = self.request("GET", "/console")
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)
