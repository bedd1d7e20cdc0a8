"""Issue 8, case 5: the HTTP side refuses bad requests with a clear 4xx and changes nothing,
and listens on loopback by default.

Requests go as raw HTTP/1.1 bytes through a real twisted.web Site (HTTPChannel on a
StringTransport), so header parsing, Content-Length and chunked bodies are Twisted's own.
"""
from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry, Gauge
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.server import Site

from ccengine import app
from ccengine.config import load_config
from ccengine.web import ApiResource, Health, HttpError, build_root, build_site

TOKEN = "t0ken-for-tests-only"


class NotesResource(ApiResource):
    """A minimal API resource: POST {"note": ...} appends, GET lists."""

    def __init__(self, token, max_body_bytes=64):
        super().__init__(token, max_body_bytes)
        self.notes: list[str] = []

    def handle(self, method, request, body):
        if method == "GET":
            return 200, {"notes": self.notes}
        if method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("note"), str):
                raise HttpError(400, "note: a string is required")
            self.notes.append(body["note"])
            return 201, {"count": len(self.notes)}
        raise HttpError(405, f"method {method} not allowed")


def site_with(notes: NotesResource, redis_up: float = 1):
    registry = CollectorRegistry()
    Gauge("ccengine_redis_up", "test", registry=registry).set(redis_up)
    health = Health(ami_connected=lambda: True,
                    redis_reachable=lambda: registry.get_sample_value("ccengine_redis_up") == 1,
                    fastagi_listening=lambda: True)
    root = build_root(registry, health)
    root.children[b"api"].putChild(b"notes", notes)
    site = build_site(root, notes.max_body_bytes)
    site.timeOut = None
    return site


def request(site: Site, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes = b"", chunked: bool = False) -> tuple[int, dict, bytes]:
    """Send one raw HTTP/1.1 request; returns (status, headers, body) as Twisted wrote them."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    else:
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(raw)
    response = transport.value()
    channel.connectionLost(None)
    head, _, content = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {k.lower(): v for k, _, v in (h.partition(": ") for h in header_lines)}
    if parsed.get("transfer-encoding") == "chunked":
        content = _dechunk(content)
    return int(status_line.split(" ")[1]), parsed, content


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, rest = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, data = out + rest[:n], rest[n + 2:]
    return out


AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.mark.parametrize("headers,code,message", [
    ({}, 401, "missing bearer token"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "missing bearer token"),
    ({"Authorization": "Bearer wrong"}, 403, "wrong token"),
    ({"Authorization": f"Bearer {TOKEN}x"}, 403, "wrong token"),
    ({"Authorization": f"bearer {TOKEN}"}, 401, "missing bearer token"),
], ids=["none", "basic", "wrong", "longer", "lower-case-scheme"])
def test_case5_missing_or_wrong_token_is_refused_and_changes_nothing(headers, code, message):
    """Case 5: without a bearer token the API answers 401, with a wrong one 403, as JSON with
    the reason, and the resource's state is unchanged."""
    notes = NotesResource(TOKEN)
    site = site_with(notes)
    for method, body in (("GET", b""), ("POST", b'{"note": "x"}')):
        status, head, content = request(site, method, "/api/notes", headers, body)
        assert status == code
        assert head["content-type"].startswith("application/json")
        assert json.loads(content) == {"error": message}
    assert notes.notes == []


def test_case5_api_without_a_configured_token_is_disabled():
    """Case 5: with no API token configured every API request is refused (403), never open."""
    notes = NotesResource(None)
    status, _, content = request(site_with(notes), "POST", "/api/notes",
                                 {"Authorization": "Bearer "}, b'{"note": "x"}')
    assert status == 403 and "disabled" in json.loads(content)["error"]
    assert notes.notes == []


@pytest.mark.parametrize("body,chunked,code", [
    (b'{"note": "' + b"x" * 100 + b'"}', False, 413),
    (b'{"note": "' + b"x" * 100 + b'"}', True, 413),
    (b'{"note": ', False, 400),
    (b"\xff\xfe{}", False, 400),
    (b"[1, 2]", False, 400),
    (b'{"note": 5}', False, 400),
], ids=["oversized", "oversized-chunked", "bad-json", "not-utf8", "not-an-object",
        "wrong-type"])
def test_case5_bad_bodies_get_a_clear_4xx_and_change_nothing(body, chunked, code):
    """Case 5: an oversized body (413, with or without Content-Length), malformed JSON, non
    UTF-8 or a wrong shape (400) is refused with a JSON error and stores nothing."""
    notes = NotesResource(TOKEN, max_body_bytes=64)
    site = site_with(notes)
    status, _, content = request(site, "POST", "/api/notes", AUTH, body, chunked=chunked)
    assert status == code
    assert json.loads(content)["error"]
    assert notes.notes == []
    status, _, _ = request(site, "POST", "/api/notes", AUTH, b'{"note": "ok"}')
    assert status == 201 and notes.notes == ["ok"]


@pytest.mark.parametrize("path", ["/api/nope", "/api/notes/123", "/nope"])
def test_case5_unknown_paths_are_404(path):
    """Case 5: an unknown path or id under the API answers 404 and touches no resource."""
    notes = NotesResource(TOKEN)
    status, _, _ = request(site_with(notes), "GET", path, AUTH)
    assert status == 404
    assert notes.notes == []


def test_case5_metrics_and_healthz_answer_and_health_reports_redis():
    """Case 5: /metrics serves the registry in the Prometheus format; /healthz is 200 when all
    checks pass and 503 with redis_reachable false when Redis is down."""
    site = site_with(NotesResource(TOKEN))
    status, head, content = request(site, "GET", "/metrics")
    assert status == 200 and head["content-type"].startswith("text/plain")
    assert b"ccengine_redis_up 1.0" in content
    status, _, content = request(site, "GET", "/healthz")
    assert status == 200 and json.loads(content)["status"] == "ok"
    status, _, content = request(site_with(NotesResource(TOKEN), redis_up=0), "GET", "/healthz")
    assert status == 503
    assert json.loads(content)["redis_reachable"] is False


def test_case5_http_and_fastagi_listen_on_loopback_by_default(redis_url):
    """Case 5: the defaults bind HTTP (/metrics, /healthz, API) and FastAGI to 127.0.0.1, and
    the wired application (app.build_service) creates no listener on another interface."""
    config = load_config(None)
    assert (config.http.bind, config.fastagi.bind, config.ami.host) == \
        ("127.0.0.1", "127.0.0.1", "127.0.0.1")
    top, _ = app.build_service(config, Clock(), redis_url)
    listeners = [s for s in top if type(s).__name__.endswith("Server")]
    assert {s.args[0] for s in listeners} == {config.http.port, config.fastagi.port}
    assert all(s.kwargs.get("interface") == "127.0.0.1" for s in listeners)


def test_case5_an_oversized_chunked_body_is_not_stored_past_the_limit():
    """Case 5: the engine's Site stops storing a body past http.max_body_bytes while it streams
    in (the request is marked too large and answered 413), instead of buffering all of it."""
    notes = NotesResource(TOKEN, max_body_bytes=64)
    site = site_with(notes)
    seen = []
    original = site.requestFactory.handleContentChunk

    def spy(self, data):
        original(self, data)
        seen.append(self.content.tell())
    site.requestFactory.handleContentChunk = spy
    status, _, _ = request(site, "POST", "/api/notes", {"Authorization": f"Bearer {TOKEN}"},
                           body=b"x" * 100_000, chunked=True)
    assert status == 413
    assert max(seen) <= 64
    assert notes.notes == []


def test_case5_unknown_api_paths_get_a_json_404():
    """Case 5: an unknown path under /api answers 404 with a JSON error, not an HTML page."""
    status, headers, body = request(site_with(NotesResource(TOKEN)), "GET", "/api/nope",
                                    {"Authorization": f"Bearer {TOKEN}"})
    assert status == 404
    assert json.loads(body) == {"error": "no such resource"}
