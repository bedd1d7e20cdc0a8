"""HTTP API under /api/complaints (bearer token, JSON; ccengine/web.py ApiResource).

    GET  /api/complaints[?state=open|escalated|resolved|closed|active&limit=N]  list
    GET  /api/complaints/{id}                                           show (with history)
    POST /api/complaints/{id}/assign   {"owner": "1005", "by": "..."}
    POST /api/complaints/{id}/resolve  {"outcome": "refund granted", "by": "..."}
    POST /api/complaints/{id}/close    {"note": "...", "by": "..."}

Errors: 401 no token, 403 wrong token (or API disabled), 413 body too large, 400 bad JSON or
bad field, 404 unknown ticket or path, 405 wrong method, 409 a change the ticket's state does
not allow, 503 Redis unavailable. Every check runs before anything is written.
"""
from __future__ import annotations

import re

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET, Request

from ccengine.complaints import tickets as t
from ccengine.complaints.service import Complaints
from ccengine.complaints.tickets import TicketError, TicketNotFound
from ccengine.store.base import StoreUnavailable
from ccengine.web import ApiResource, HttpError, json_body

log = Logger()
ACTIONS = ("assign", "resolve", "close")
LIST_STATES = (*t.STATES, "active")


class ComplaintsResource(ApiResource):
    isLeaf = True

    def __init__(self, complaints: Complaints, token: str | None, max_body_bytes: int):
        super().__init__(token, max_body_bytes)
        self.complaints = complaints

    def render(self, request: Request) -> Any:
        try:
            self.check_token(request)
            body = self.read_json(request) if request.method == b"POST" else None
            work = self.route(request.method.decode("ascii", "replace"),
                              [p.decode("utf-8", "replace") for p in request.postpath or [] if p],
                              request, body)
        except HttpError as exc:
            request.setResponseCode(exc.code)
            return json_body(request, {"error": exc.message})
        d = Deferred.fromCoroutine(work)
        d.addCallbacks(lambda result: self._finish(request, *result),
                       lambda failure: self._finish(request, *self._error(failure)))
        return NOT_DONE_YET

    def _finish(self, request: Request, code: int, payload: Any) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        request.setResponseCode(code)
        request.write(json_body(request, payload))
        request.finish()

    @staticmethod
    def _error(failure) -> tuple[int, Any]:
        if failure.check(HttpError):
            return failure.value.code, {"error": failure.value.message}
        if failure.check(TicketNotFound):
            return 404, {"error": f"no ticket {failure.value}"}
        if failure.check(TicketError):
            return 409, {"error": str(failure.value)}
        if failure.check(StoreUnavailable):
            return 503, {"error": "ticket store unavailable, nothing was changed"}
        log.error("complaints API failed: {f}", f=failure.getTraceback())
        return 500, {"error": "internal error"}

    def route(self, method: str, path: list[str], request: Request, body: Any):
        if not path:
            if method != "GET":
                raise HttpError(405, f"method {method} not allowed")
            return self._list(request)
        ticket_id = path[0]
        if not t.TICKET_ID_RE.fullmatch(ticket_id) or len(path) > 2:
            raise HttpError(404, "no such ticket")
        if len(path) == 1:
            if method != "GET":
                raise HttpError(405, f"method {method} not allowed")
            return self._show(ticket_id)
        action = path[1]
        if action not in ACTIONS:
            raise HttpError(404, f"unknown action {action[:20]!r}")
        if method != "POST":
            raise HttpError(405, f"method {method} not allowed")
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        return self._act(ticket_id, action, body)

    async def _list(self, request: Request) -> tuple[int, Any]:
        state = _arg(request, b"state")
        if state is not None and state not in LIST_STATES:
            raise HttpError(400, f"state must be one of {', '.join(LIST_STATES)}")
        raw_limit = _arg(request, b"limit") or "50"
        if not re.fullmatch(r"[0-9]{1,3}", raw_limit) or not 1 <= int(raw_limit) <= 500:
            raise HttpError(400, "limit must be 1-500")
        found = await self.complaints.store.list(state, int(raw_limit))
        return 200, {"tickets": [x.to_json() for x in found]}

    async def _show(self, ticket_id: str) -> tuple[int, Any]:
        return 200, (await self.complaints.store.get(ticket_id)).to_json()

    async def _act(self, ticket_id: str, action: str, body: dict) -> tuple[int, Any]:
        allowed = {"assign": {"owner", "by"}, "resolve": {"outcome", "by"},
                   "close": {"note", "by"}}[action]
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise HttpError(400, f"unknown field(s): {', '.join(unknown)}")
        try:
            by = t.check_owner(body["by"]) if "by" in body else "api"
            if action == "assign":
                if "owner" not in body:
                    raise HttpError(400, "owner is required")
                t.check_owner(body["owner"])
            elif action == "resolve":
                t.check_text("outcome", body.get("outcome"))
            else:
                t.check_text("note", body.get("note"), required=False)
        except TicketError as exc:      # bad input: refused before anything is read or written
            raise HttpError(400, str(exc)) from None
        if action == "assign":
            new = await self.complaints.assign(ticket_id, body["owner"], by)
        elif action == "resolve":
            new = await self.complaints.resolve(ticket_id, body["outcome"], by)
        else:
            new = await self.complaints.close(ticket_id, by, body.get("note") or "")
        return 200, new.to_json()


def _arg(request: Request, name: bytes) -> str | None:
    args: dict[bytes, list[bytes]] = request.args or {}
    values = args.get(name)
    return values[0].decode("utf-8", "replace") if values else None
