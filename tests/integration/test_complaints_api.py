"""HTTP API /api/complaints with twisted.web's DummyRequest (no port), real Redis behind it."""
import json
from io import BytesIO

import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from ccengine.complaints.api import ComplaintsResource
from ccengine.complaints.followup import FollowUpScheduler
from ccengine.complaints.metrics import ComplaintMetrics
from ccengine.complaints.service import Complaints
from ccengine.complaints.store import TicketStore
from ccengine.store.base import RedisConnection

HOURS = {"agent": 24, "supervisor": 48, "manager": 72}
TOKEN = "t0ken-for-tests"


def setup(redis_url, max_body=1024):
    clock = Clock()
    clock.advance(1_795_366_400)
    conn = RedisConnection(redis_url)
    registry = CollectorRegistry()
    complaints = Complaints(TicketStore(conn, HOURS), ComplaintMetrics(registry), clock, HOURS,
                            FollowUpScheduler(conn, clock, 24))
    return ComplaintsResource(complaints, TOKEN, max_body), complaints, conn, registry


async def call(resource, method, path, body=None, token=TOKEN, raw=None, args=None):
    request = DummyRequest([p.encode() for p in path])
    request.method = method.encode()
    if token is not None:
        request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    request.content = BytesIO(data)
    if data:
        request.requestHeaders.setRawHeaders(b"content-length", [str(len(data)).encode()])
    request.args = {k.encode(): [v.encode()] for k, v in (args or {}).items()}
    result = resource.render(request)
    if result is NOT_DONE_YET:
        if not request.finished:        # some answers are complete before render returns
            await request.notifyFinish()
    else:
        request.write(result)
    return request.responseCode or 200, json.loads(b"".join(request.written))


async def ticket(complaints):
    return await complaints.open(number="13800000001", agent="2001", queue="complaint")


@pytest_twisted.ensureDeferred
async def test_token_is_required_and_checked(redis_url):
    """No token -> 401, wrong token -> 403; nothing is listed or changed."""
    resource, complaints, conn, _ = setup(redis_url)
    t = await ticket(complaints)
    assert (await call(resource, "GET", [], token=None))[0] == 401
    code, body = await call(resource, "POST", [t.id, "resolve"], {"outcome": "x"}, token="nope")
    assert code == 403 and "token" in body["error"]
    assert (await complaints.store.get(t.id)).state == "open"
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_list_show_assign_resolve_close(redis_url):
    """The happy path: list, show with history, assign, resolve (follow-up scheduled), close."""
    resource, complaints, conn, registry = setup(redis_url)
    t = await ticket(complaints)
    code, body = await call(resource, "GET", [], args={"state": "active"})
    assert code == 200 and [x["id"] for x in body["tickets"]] == [t.id]
    code, body = await call(resource, "POST", [t.id, "assign"], {"owner": "1005", "by": "sup1"})
    assert code == 200 and body["owner"] == "1005"
    code, body = await call(resource, "POST", [t.id, "resolve"], {"outcome": "refund granted"})
    assert code == 200 and (body["state"], body["followup"]) == ("resolved", "scheduled")
    code, body = await call(resource, "POST", [t.id, "close"], {})
    assert code == 200 and body["state"] == "closed"
    code, body = await call(resource, "GET", [t.id])
    assert [h["event"] for h in body["history"]] == [
        "opened", "assigned", "resolved", "followup_scheduled", "closed"]
    assert registry.get_sample_value("ccengine_complaint_tickets_closed_total",
                                     {"within_limit": "true"}) == 1
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_bad_input_gets_4xx_and_changes_nothing(redis_url):
    """Oversized body 413, bad JSON / unknown field / bad owner / empty outcome 400, unknown id
    or action 404, a change the state forbids 409; the ticket is untouched by all of them."""
    resource, complaints, conn, _ = setup(redis_url, max_body=200)
    t = await ticket(complaints)
    before = await complaints.store.get(t.id)
    cases = [
        (413, "POST", [t.id, "resolve"], None, b'{"outcome": "' + b"x" * 300 + b'"}'),
        (400, "POST", [t.id, "resolve"], None, b"{not json"),
        (400, "POST", [t.id, "resolve"], None, b"[1, 2]"),
        (400, "POST", [t.id, "resolve"], {"outcome": "ok", "state": "closed"}, None),
        (400, "POST", [t.id, "resolve"], {"outcome": ""}, None),
        (400, "POST", [t.id, "resolve"], {"outcome": "a\nb"}, None),
        (400, "POST", [t.id, "assign"], {"owner": "1005\r\nX: y"}, None),
        (400, "POST", [t.id, "assign"], {}, None),
        (404, "GET", ["999"], None, None),
        (404, "GET", ["../etc"], None, None),
        (404, "POST", [t.id, "delete"], {}, None),
        (405, "DELETE", [t.id], None, None),
    ]
    for expected, method, path, body, raw in cases:
        code, answer = await call(resource, method, path, body, raw=raw)
        assert (code, bool(answer.get("error"))) == (expected, True), (path, body, raw)
    code, _ = await call(resource, "GET", [], args={"state": "bogus"})
    assert code == 400
    await call(resource, "POST", [t.id, "close"], {})
    code, answer = await call(resource, "POST", [t.id, "resolve"], {"outcome": "late"})
    assert code == 409 and "closed" in answer["error"]
    after = await complaints.store.get(t.id)
    assert [h["event"] for h in after.history] == [h["event"] for h in before.history] + ["closed"]
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_unknown_ticket_action_is_404_and_creates_nothing(redis_url):
    """Acting on a ticket that does not exist answers 404 and writes no key for it."""
    resource, complaints, conn, _ = setup(redis_url)
    code, body = await call(resource, "POST", ["4242", "assign"], {"owner": "1005"})
    assert code == 404 and "4242" in body["error"]
    assert await conn.call(lambda r: r.exists("cc:complaint:4242")) == 0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_hostile_bodies_and_limits_get_400_not_500(redis_url):
    """issue 19 point 9: deeply nested JSON, a 60,000-digit number, a limit of 5,000 nines
    and full-width digits are refused with 400 and a message (they gave 500 and a traceback)."""
    resource, complaints, conn, _ = setup(redis_url, max_body=65536)
    t = await ticket(complaints)
    nested = b"[" * 50_000 + b"]" * 50_000
    code, body = await call(resource, "POST", [t.id, "assign"], raw=nested[:60000])
    assert code in (400, 413) and "error" in body
    code, body = await call(resource, "POST", [t.id, "assign"], raw=b"[" * 30000 + b"]" * 30000)
    assert code == 400 and "nested" in body["error"]
    code, body = await call(resource, "POST", [t.id, "assign"], raw=b'{"owner": ' + b"9" * 60000 + b"}")
    assert code == 400
    for limit in ("9" * 5000, "５０", "1e3", "-1"):
        code, body = await call(resource, "GET", [], args={"limit": limit})
        assert code == 400 and "limit" in body["error"], limit
    await conn.close()
