"""The console's HTTP answers to hostile and careless requests, against the real engine
process (tests/console_floor.py): cookies, CSRF, roles, the login limit, recordings, headers.
"""
from __future__ import annotations

import http.client
import urllib.parse

from console_floor import OPERATIONS, SUPERVISOR, UNIQUEID, Client


def test_session_cookie_flags_and_page_headers(floor):
    client = Client(floor.http)
    status, headers, page = client.request("GET", "/console")
    assert status == 200 and 'action="/console/login"' in page
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    client.request("GET", "/console")
    conn = http.client.HTTPConnection("127.0.0.1", floor.http, timeout=10)
    conn.request("POST", "/console/login", body=urllib.parse.urlencode({
        "user": SUPERVISOR[0], "password": SUPERVISOR[1], "csrf": client.cookies["cc_login"]}),
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "Cookie": f"cc_login={client.cookies['cc_login']}"})
    answer = conn.getresponse()
    assert answer.status == 303
    session = [c for c in answer.headers.get_all("Set-Cookie") if c.startswith("cc_session=")][0]
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/console" in session


def test_login_needs_the_forms_own_token(floor):
    client = Client(floor.http)
    client.request("GET", "/console")
    status, _, _ = client.request("POST", "/console/login", {
        "user": SUPERVISOR[0], "password": SUPERVISOR[1], "csrf": "forged"})
    assert status == 403 and "cc_session" not in client.cookies
    status, _, _ = client.request("POST", "/console/login", {
        "user": SUPERVISOR[0], "password": SUPERVISOR[1], "csrf": client.cookies["cc_login"]},
        headers={"Origin": "http://evil.example"})
    assert status == 403 and "cc_session" not in client.cookies


def test_failed_logins_are_limited_and_answered_alike(floor):
    client = Client(floor.http)
    client.request("GET", "/console")
    answers = set()
    for _ in range(5):
        status, _, page = client.request("POST", "/console/login", {
            "user": SUPERVISOR[0], "password": "wrong", "csrf": client.cookies["cc_login"]})
        answers.add((status, "Wrong user name or password" in page or "用户名或密码错误" in page))
    status, _, page = client.request("POST", "/console/login", {
        "user": "nobody", "password": "wrong", "csrf": client.cookies["cc_login"]})
    answers.add((status, "用户名或密码错误" in page or "Wrong user name" in page))
    assert answers == {(401, True)}          # unknown name and wrong password look the same
    # The sixth attempt for alice is refused even with the right password.
    status, _, _ = client.request("POST", "/console/login", {
        "user": SUPERVISOR[0], "password": SUPERVISOR[1], "csrf": client.cookies["cc_login"]})
    assert status == 401 and "cc_session" not in client.cookies
    # Another account is not locked by alice's failures.
    assert Client(floor.http).login(*OPERATIONS) == 303


def test_actions_need_a_session_the_csrf_token_and_the_supervisor_role(floor):
    anonymous = Client(floor.http)
    status, _, _ = anonymous.request("POST", "/console/action/pause", {"agent": "1001", "reason": "1"})
    assert status == 401
    alice = Client(floor.http)
    assert alice.login(*SUPERVISOR) == 303
    status, _, text = alice.request("POST", "/console/action/pause",
                                    {"agent": "1001", "reason": "1", "override": "1"},
                                    headers={"X-CSRF-Token": "forged"})
    assert status == 403 and "security token" in text
    status, _, text = alice.request("POST", "/console/action/pause",
                                    {"agent": "1001", "reason": "1", "override": "1"},
                                    headers={"X-CSRF-Token": alice.csrf(),
                                             "Origin": "http://evil.example"})
    assert status == 403
    status, _, text = alice.request("POST", "/console/action/format-disk", {},
                                    headers={"X-CSRF-Token": alice.csrf()})
    assert status == 404
    assert floor.sent("QueuePause") == []
    olga = Client(floor.http)
    assert olga.login(*OPERATIONS) == 303
    status, _, text = olga.request("POST", "/console/action/logout", {"agent": "1001"},
                                   headers={"X-CSRF-Token": olga.csrf()})
    assert status == 403 and "read-only" in text
    assert floor.sent("QueueRemove") == []


def test_hostile_action_fields_are_refused_before_ami(floor):
    alice = Client(floor.http)
    alice.login(*SUPERVISOR)
    token = alice.csrf()
    for action, form in [
            ("pause", {"agent": "1001\r\nAction: Hangup", "reason": "1"}),
            ("pause", {"agent": "1001", "reason": "lunch\r\nAction: Hangup"}),
            ("move", {"caller": UNIQUEID, "queue": "inbound\r\nAction: Hangup"}),
            ("listen", {"agent": "../../1001"}),
            ("assign", {"ticket": "1; DROP", "owner": "x"})]:
        status, _, text = alice.request("POST", f"/console/action/{action}", form,
                                        headers={"X-CSRF-Token": token})
        assert status == 409 and "refused" in text, (action, form, text)
    actions = [line for line in floor.actions.read_text().splitlines()
               if "Hangup" in line or "DROP" in line]
    assert actions == []


def test_recordings_only_for_supervisors_and_only_the_calls_own_file(floor, tmp_path):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / f"{UNIQUEID}.wav").write_bytes(b"RIFF0000WAVEfmt fake")
    (tmp_path / "secret.wav").write_bytes(b"not yours")
    floor.save_record("1796219700.9", {"recording": "../secret.wav"})
    floor.save_record(UNIQUEID, {"recording": f"{UNIQUEID}.wav"})
    olga = Client(floor.http)
    olga.login(*OPERATIONS)
    status, _, _ = olga.request("GET", f"/console/recording/{UNIQUEID}")
    assert status == 403
    alice = Client(floor.http)
    alice.login(*SUPERVISOR)
    status, headers, body = alice.request("GET", f"/console/recording/{UNIQUEID}")
    assert status == 200 and headers["content-type"] == "audio/wav" and body.startswith("RIFF")
    for path in ("/console/recording/1796219700.9", "/console/recording/..%2Fsecret",
                 "/console/recording/..", "/console/recording/nope"):
        status, _, body = alice.request("GET", path)
        assert status == 404 and "not yours" not in body, path


def test_events_need_a_session_and_static_files_are_a_fixed_list(floor):
    status, _, _ = Client(floor.http).request("GET", "/console/events")
    assert status == 401
    client = Client(floor.http)
    status, headers, body = client.request("GET", "/console/static/htmx.min.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    for path in ("/console/static/../web.py", "/console/static/accounts.py",
                 "/console/static/LICENSE.htmx"):
        status, _, _ = client.request("GET", path)
        assert status == 404, path
