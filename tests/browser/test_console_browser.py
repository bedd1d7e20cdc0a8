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

import threading
import time
from pathlib import Path

import pytest

from console_floor import (HOSTILE_AGENT, HOSTILE_CUSTOMER, OPERATIONS, SUPERVISOR, UNIQUEID,
                           Floor, lab_events, rest_of_call, stage)

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = Path(__file__).parent / "artefacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed "
                                "(scripts/install.sh installs it)")


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
        log_in(page, floor, *SUPERVISOR)
        page.evaluate("window.sameDocument = 'yes'")     # gone if the page reloads

        # The grid from QueueStatus: agent 1001 logged in, the hostile name shown as text.
        row = page.locator("tr.agent[data-agent='1001']")
        expect(row).to_contain_text(HOSTILE_AGENT)
        expect(row.locator(".state")).to_contain_text("available")
        shot(page, "1-floor-idle")

        # A caller joins inbound (the lab's QueueCallerJoin): their row appears, no reload.
        sent = time.monotonic()
        floor.emit(stage(events, "QueueCallerJoin", "QueueCallerJoin"))
        caller = page.locator(f"tr.caller[data-uniqueid='{UNIQUEID}']")
        expect(caller).to_be_visible(timeout=3000)
        # Printed, not asserted (no timing assertions in the suite): event sent -> row shown,
        # including Playwright's own polling of the page.
        print(f"\nQueueCallerJoin sent -> caller row on the page: {time.monotonic() - sent:.3f} s")
        expect(caller).to_contain_text(HOSTILE_CUSTOMER)
        expect(caller).to_contain_text("VIP")
        expect(page.locator("#queue-inbound .waiting-count")).to_have_text("1")
        shot(page, "2-caller-waiting")

        # Agent rung, caller leaves the queue, agent connected: the caller's row goes away.
        sent = time.monotonic()
        floor.emit(stage(events, "AgentCalled", "AgentConnect"))
        expect(caller).to_have_count(0, timeout=3000)
        print(f"QueueCallerLeave sent -> caller row gone: {time.monotonic() - sent:.3f} s")
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
        log_in(page, floor, *OPERATIONS)
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
