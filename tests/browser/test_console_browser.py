"""The supervisor console in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright for Python), against the real engine process (`ccengine run`), real Redis and an
AMI server that answers with recorded Asterisk 22 messages (tests/ami_server.py).

The floor: QueueStatus is d_queuestatus_idle's (members PJSIP/1001..1005 in inbound and
complaint); agent 1001 is logged in on phone 1001 in Redis; the call events are those of the
lab run tests/fixtures/asterisk_lab24/routed_call_agent_free (a caller joins inbound, agent
1001 rings, answers, hangs up), sent in stages while the page is open.

Screenshots are kept in tests/browser/artefacts/ (git-ignored) for a person to look at.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import ami_replay
from ccengine.agents.directory import AgentDirectory, AgentRecord, AgentSession, hash_pin
from ccengine.calls.records import CallRecordStore
from ccengine.cli.support import wait
from ccengine.store.base import RedisConnection
from ccengine.store.embedded import free_port

playwright = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = Path(__file__).parent / "artefacts"
LAB = ROOT / "tests" / "fixtures" / "asterisk_lab24" / "routed_call_agent_free.ami_stream.raw"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
HOSTILE_AGENT = '<script>window.pwned=1</script>张伟'
HOSTILE_CUSTOMER = '<img src=x onerror="window.pwned=2">'
UNIQUEID = "1796219603.1"     # the caller of routed_call_agent_free

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed "
                                "(scripts/install.sh installs it)")


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

    def seed(self) -> None:
        async def run() -> None:
            conn = RedisConnection(self.redis_url, 2.0)
            directory = AgentDirectory(conn)
            await wait(directory.add(AgentRecord("1001", {"inbound": 0, "complaint": 0}, ("zh",),
                                                 HOSTILE_AGENT, hash_pin("4826"))))
            assert await wait(directory.claim(AgentSession(
                "1001", "1001", "PJSIP/1001", time.time() - 600,
                {"inbound": 0, "complaint": 0}))) == "ok"
            records = CallRecordStore(conn, 1000, 1)
            await wait(records.save(UNIQUEID, time.time(), {
                "caller": "13800138000", "tier": "vip", "customer": HOSTILE_CUSTOMER,
                "language": "zh", "queue": "inbound", "category": "order", "outcome": "queued"}))
            await conn.aclose()
        # A thread of its own: pytest-twisted may be running its asyncio loop in this one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, run()).result()
        self.cli("users", "add", "alice", "--role", "supervisor", "--phone", "2001",
                 "--display", "Alice", "--password-stdin", stdin="alice-password-1\n")
        self.cli("users", "add", "olga", "--role", "operations", "--password-stdin",
                 stdin="olga-password-12\n")

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


@pytest.fixture
def floor(tmp_path, redis_url):
    floor = Floor(tmp_path, redis_url)
    try:
        floor.seed()
        floor.start()
        yield floor
    finally:
        floor.stop()


def log_in(page, floor: Floor, user: str, password: str) -> None:
    page.goto(f"{floor.url}/console?lang=en")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("section#agents table.agents")


def shot(page, name: str) -> None:
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def wait_sent(floor: Floor, action: str, count: int, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = floor.sent(action)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{action} not sent: {floor.actions.read_text()}")


def in_thread(drive) -> None:
    """Run `drive()` in a thread of its own: the sync Playwright API refuses to run where an
    asyncio loop is running (pytest-twisted runs the asyncio reactor in this thread)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            drive()
        except BaseException as exc:   # re-raised in the test's thread
            errors.append(exc)
    worker = threading.Thread(target=run, name="playwright")
    worker.start()
    worker.join(240)
    assert not worker.is_alive(), "browser test still running after 240 s"
    if errors:
        raise errors[0]


def test_supervisor_watches_the_floor_live_and_acts(floor):
    in_thread(lambda: supervisor_session(floor))


def test_operations_sees_everything_and_can_change_nothing(floor):
    in_thread(lambda: operations_session(floor))


def supervisor_session(floor):
    events = lab_events()
    expect = playwright.expect
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        log_in(page, floor, "alice", "alice-password-1")
        page.evaluate("window.sameDocument = 'yes'")     # gone if the page reloads

        # The grid from QueueStatus: agent 1001 logged in, the hostile name shown as text.
        row = page.locator("tr.agent[data-agent='1001']")
        expect(row).to_contain_text(HOSTILE_AGENT)
        expect(row.locator(".state")).to_contain_text("available")
        shot(page, "1-floor-idle")

        # A caller joins inbound (the lab's QueueCallerJoin): their row appears, no reload.
        floor.emit(stage(events, "QueueCallerJoin", "QueueCallerJoin"))
        caller = page.locator(f"tr.caller[data-uniqueid='{UNIQUEID}']")
        expect(caller).to_be_visible(timeout=3000)
        expect(caller).to_contain_text(HOSTILE_CUSTOMER)
        expect(caller).to_contain_text("VIP")
        expect(page.locator("#queue-inbound .waiting-count")).to_have_text("1")
        shot(page, "2-caller-waiting")

        # Agent rung, caller leaves the queue, agent connected: the caller's row goes away.
        floor.emit(stage(events, "AgentCalled", "AgentConnect"))
        expect(caller).to_have_count(0, timeout=3000)
        expect(row.locator(".state")).to_contain_text("on a call", timeout=3000)
        assert page.evaluate("window.sameDocument") == "yes"
        assert page.evaluate("window.pwned") is None

        # Listen: Originate to Alice's own phone running ChanSpy on the agent's channel.
        row.locator("button.listen").click()
        expect(page.locator("#flash")).to_contain_text("your phone 2001 rings")
        originate = dict(wait_sent(floor, "Originate", 1)[0])
        assert originate["Channel"] == "PJSIP/2001"
        assert originate["Application"] == "ChanSpy"
        assert originate["Data"] == "PJSIP/1001-,bqES"
        shot(page, "3-on-call-listen")

        # The call ends; a pause is refused by the staffing guard, then allowed by override.
        floor.emit(rest_of_call(events, "AgentComplete"))
        expect(row.locator("button.pause")).to_be_visible(timeout=3000)
        row.locator("select[name=reason]").select_option(label="break")
        row.locator("button.pause").click()
        expect(page.locator("#flash")).to_contain_text("minimum staffing")
        assert floor.sent("QueuePause") == []
        row.locator("input[name=override]").check()
        row.locator("button.pause").click()
        expect(page.locator("#flash")).to_contain_text("agent 1001 paused (break)")
        pause = wait_sent(floor, "QueuePause", 1)[0]
        assert pause[1:4] == [["Interface", "PJSIP/1001"], ["Paused", "true"], ["Reason", "break"]]
        expect(row.locator(".state")).to_contain_text("paused (break)", timeout=3000)
        expect(page.locator("section#audit tr.ok")).to_contain_text(["paused (break)"])
        shot(page, "4-paused-audit")
        browser.close()


def operations_session(floor):
    expect = playwright.expect
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        log_in(page, floor, "olga", "olga-password-12")
        row = page.locator("tr.agent[data-agent='1001']")
        expect(row).to_be_visible()
        expect(page.locator("header")).to_contain_text("read-only")
        assert page.locator("button.pause, button.listen, button.logout").count() == 0
        # Forge the request the page would send, with this session's own CSRF token.
        answer = page.evaluate("""async () => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
            const r = await fetch('/console/action/pause', {method: 'POST',
                headers: {'X-CSRF-Token': token, 'Content-Type': 'application/x-www-form-urlencoded'},
                body: 'agent=1001&reason=1&override=1'});
            return [r.status, await r.text()];
        }""")
        assert answer[0] == 403 and "read-only" in answer[1]
        assert floor.sent("QueuePause") == []
        expect(page.locator("section#audit")).to_contain_text("read-only", timeout=3000)
        shot(page, "5-operations-read-only")

        # Chinese, switched from the page.
        page.click("header a[href='/console?lang=zh']")
        expect(page.locator("section#agents h2")).to_have_text("坐席")
        shot(page, "6-operations-zh")
        browser.close()
