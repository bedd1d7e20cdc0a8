"""The console's HTTP resources under /console (docs/console.md).

    GET  /console                 the page (or the login form)      ?lang=zh|en switches
    POST /console/login           user, password, csrf (the login form's cookie)
    POST /console/logout          csrf
    GET  /console/events          server-sent events: the panels as they change
    POST /console/action/<name>   an action (actions.py); CSRF token in X-CSRF-Token or csrf
    GET  /console/recording/<id>  a call's recording (supervisors only)
    GET  /console/static/<file>   htmx, its SSE extension, console.js, console.css

Security: session cookie `cc_session` (HttpOnly, SameSite=Strict, Path=/console, Secure over
TLS or with console.secure_cookies); a CSRF token per session, checked on every POST, plus
the Origin header when the browser sends one; the login form has its own double-submit token.
Every answer carries a Content-Security-Policy without inline scripts or styles, nosniff,
same-origin referrers (with no-referrer Chromium sends `Origin: null` on form posts, which the
origin check refuses), frame-ancestors 'none' and Cache-Control: no-store.
"""
from __future__ import annotations

import secrets
from importlib import resources
from typing import Any
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.static import File

from ccengine.console import pages
from ccengine.console.accounts import AccountStore, Session, csrf_matches, verify_password
from ccengine.console.actions import ConsoleActions
from ccengine.console.live import LiveHub, Stream
from ccengine.console.recordings import recording_path
from ccengine.store.base import StoreUnavailable

log = Logger()
SESSION_COOKIE = b"cc_session"
LOGIN_COOKIE = b"cc_login"
LANG_COOKIE = b"cc_lang"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
STATIC = {"htmx.min.js": "text/javascript", "htmx-ext-sse.js": "text/javascript",
          "console.js": "text/javascript", "console.css": "text/css"}


def _headers(request: Request, content_type: bytes = b"text/html; charset=utf-8") -> None:
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"content-security-policy", CSP.encode())
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"same-origin")
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"cache-control", b"no-store")


def _args(request: Request) -> dict[bytes, list[bytes]]:
    return request.args or {}


def _field(request: Request, name: str) -> str:
    values = _args(request).get(name.encode(), [])
    if not values:
        return ""
    try:
        return values[0].decode("utf-8")[:512]
    except UnicodeDecodeError:
        return ""


def _cookie(request: Request, name: bytes) -> str:
    raw = request.getCookie(name)
    try:
        return raw.decode("ascii") if raw else ""
    except UnicodeDecodeError:
        return ""


def _run(request: Request, work: Callable[[], Any]) -> Any:
    """Render asynchronously: `work()` is a coroutine returning bytes (or None once it has
    finished the request itself). Errors answer 503 (Redis) or 500, never a traceback."""
    finished = []
    request.notifyFinish().addBoth(lambda _: finished.append(True))

    def write(body: bytes | None) -> None:
        if body is None or finished:
            return
        request.write(body)
        request.finish()

    def failed(failure: Any) -> None:
        if failure.check(StoreUnavailable):
            log.warn("console: Redis unavailable: {e}", e=failure.getErrorMessage())
            code, text = 503, "Redis is unavailable; try again in a moment."
        else:
            log.failure("console request failed", failure)
            code, text = 500, "internal error"
        if not finished and not request.startedWriting:
            request.setResponseCode(code)
            _headers(request)
            write(pages.message(text, False).encode())
    Deferred.fromCoroutine(work()).addCallbacks(write, failed)
    return NOT_DONE_YET


class Console(Resource):
    """/console: the page itself; children for everything else."""

    def __init__(self, accounts: AccountStore, hub: LiveHub, actions: ConsoleActions,
                 records: Any, config: Any, clock: Any):
        super().__init__()
        self.accounts = accounts
        self.hub = hub
        self.config = config
        self.clock = clock
        self.company = config.company.name
        self.putChild(b"", self)
        self.putChild(b"login", _Login(self))
        self.putChild(b"logout", _Logout(self))
        self.putChild(b"events", _Events(self))
        self.putChild(b"action", _Actions(self, actions))
        self.putChild(b"recording", _Recordings(self, records))
        self.putChild(b"static", _Static())

    # --- shared helpers -------------------------------------------------------------------
    def language(self, request: Request) -> str:
        chosen = _field(request, "lang") or _cookie(request, LANG_COOKIE)
        lang = pages.pick_language(_header(request, b"accept-language"), chosen)
        if _field(request, "lang") in pages.LANGUAGES:
            request.addCookie(LANG_COOKIE, lang.encode(), path=b"/console", httpOnly=True,
                              sameSite="strict", max_age=b"31536000")
        return lang

    def secure(self, request: Request) -> bool:
        return bool(request.isSecure()) or self.config.console.secure_cookies

    async def session(self, request: Request) -> Session | None:
        return await self.accounts.session(_cookie(request, SESSION_COOKIE))

    def same_origin(self, request: Request) -> bool:
        origin = _header(request, b"origin")
        if not origin:
            return True      # not sent (same-origin form posts in some browsers): SameSite holds
        host = _header(request, b"host")
        return origin in (f"http://{host}", f"https://{host}")

    # --- GET /console ---------------------------------------------------------------------
    def render_GET(self, request: Request) -> Any:
        lang = self.language(request)
        _headers(request)

        async def page() -> bytes:
            session = await self.session(request)
            if session is None:
                token = secrets.token_urlsafe(24)
                request.addCookie(LOGIN_COOKIE, token.encode(), path=b"/console", httpOnly=True,
                                  sameSite="strict", secure=self.secure(request), max_age=b"3600")
                return pages.login_page(lang, self.company, token).encode()
            fragments, now = await self.hub.render(lang, session.account.can_act)
            return pages.shell(lang, self.company, session.account, session.csrf, fragments,
                               now).encode()
        return _run(request, page)


def _header(request: Request, name: bytes) -> str:
    raw = request.getHeader(name)
    if raw is None:
        return ""
    return raw.decode("latin-1")[:512] if isinstance(raw, bytes) else str(raw)[:512]


def _redirect(request: Request, to: bytes = b"/console") -> bytes:
    request.setResponseCode(303)
    request.setHeader(b"location", to)
    return b""


class _Login(Resource):
    isLeaf = True

    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    def render_POST(self, request: Request) -> Any:
        console = self.console
        lang = console.language(request)
        _headers(request)
        user, password = _field(request, "user").strip().lower(), _field(request, "password")
        token = _cookie(request, LOGIN_COOKIE)
        address = getattr(request.getClientAddress(), "host", "") or ""

        async def login() -> bytes:
            if not token or not secrets.compare_digest(token, _field(request, "csrf")) or \
                    not console.same_origin(request):
                request.setResponseCode(403)
                return pages.message("forbidden: reload the login page", False).encode()
            accounts = console.accounts
            allowed = await accounts.login_allowed(user, address)
            found = await accounts.get(user) if allowed else None
            stored = found[1] if found else None
            ok = await deferToThread(verify_password, password, stored) if allowed else False
            if not ok or found is None:
                await accounts.login_failed(user, address)
                log.warn("console: failed login for {user!r:.40} from {addr}", user=user,
                         addr=address)
                request.setResponseCode(401)
                return pages.login_page(lang, console.company, token, failed=True).encode()
            await accounts.login_ok(user)
            cookie, _ = await accounts.open_session(found[0], console.clock.seconds())
            request.addCookie(SESSION_COOKIE, cookie.encode(), path=b"/console", httpOnly=True,
                              sameSite="strict", secure=console.secure(request),
                              max_age=str(accounts.session_seconds).encode())
            request.addCookie(LOGIN_COOKIE, b"", path=b"/console", max_age=b"0")
            log.info("console: {user} logged in from {addr}", user=user, addr=address)
            return _redirect(request)
        return _run(request, login)


class _Logout(Resource):
    isLeaf = True

    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    def render_POST(self, request: Request) -> Any:
        _headers(request)

        async def logout() -> bytes:
            session = await self.console.session(request)
            if session is not None and csrf_matches(session, _field(request, "csrf")):
                await self.console.accounts.close_session(_cookie(request, SESSION_COOKIE))
                request.addCookie(SESSION_COOKIE, b"", path=b"/console", max_age=b"0")
            return _redirect(request)
        return _run(request, logout)


class _Events(Resource):
    isLeaf = True

    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    def render_GET(self, request: Request) -> Any:
        console = self.console
        lang = console.language(request)

        async def events() -> bytes | None:
            session = await console.session(request)
            if session is None:
                _headers(request)
                request.setResponseCode(401)
                return b"log in first"
            if console.hub.full():
                _headers(request)
                request.setResponseCode(503)
                return b"too many console pages open"
            _headers(request, b"text/event-stream; charset=utf-8")
            request.setHeader(b"x-accel-buffering", b"no")
            request.write(b"retry: 2000\n\n")
            console.hub.add(Stream(request, lang, session.account.can_act,
                                   _cookie(request, SESSION_COOKIE)))
            return None     # the hub writes from now on and finishes at logout or stop
        return _run(request, events)


class _Actions(Resource):
    def __init__(self, console: Console, actions: ConsoleActions):
        super().__init__()
        self.console = console
        self.actions = actions

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _Action(self, path.decode("ascii", "replace")[:32])


class _Action(Resource):
    isLeaf = True

    def __init__(self, parent: _Actions, name: str):
        super().__init__()
        self.parent = parent
        self.name = name

    def render_POST(self, request: Request) -> Any:
        console, actions = self.parent.console, self.parent.actions
        _headers(request)

        async def act() -> bytes:
            session = await console.session(request)
            if session is None:
                request.setResponseCode(401)
                return pages.message("log in first", False).encode()
            token = _header(request, b"x-csrf-token") or _field(request, "csrf")
            if not csrf_matches(session, token) or not console.same_origin(request):
                request.setResponseCode(403)
                return pages.message("forbidden: reload the page (security token)", False).encode()
            if self.name not in actions.names:
                request.setResponseCode(404)
                return pages.message("unknown action", False).encode()
            names = [key.decode("ascii", "replace")[:32] for key in _args(request)]
            fields = {name: _field(request, name) for name in names}
            outcome = await actions.run(session.account, self.name, fields)
            console.hub.board.audit_changed()
            if self.name in ("assign", "resolve", "close"):
                console.hub.board.tickets_changed()
            if self.name == "logout":
                console.hub.board.agents_changed()
            console.hub.changed()
            if not outcome.ok:
                request.setResponseCode(403 if not session.account.can_act else 409)
            return pages.message(outcome.message, outcome.ok).encode()
        return _run(request, act)


class _Recordings(Resource):
    def __init__(self, console: Console, records: Any):
        super().__init__()
        self.console = console
        self.records = records

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _Recording(self, path.decode("ascii", "replace")[:80])


class _Recording(Resource):
    isLeaf = True

    def __init__(self, parent: _Recordings, call_id: str):
        super().__init__()
        self.parent = parent
        self.call_id = call_id

    def render_GET(self, request: Request) -> Any:
        console = self.parent.console

        async def serve() -> bytes | None:
            session = await console.session(request)
            if session is None or not session.account.can_act:
                _headers(request)
                request.setResponseCode(403)
                return pages.message("supervisors only", False).encode()
            try:
                record = await self.parent.records.get(self.call_id)
            except ValueError:          # not a call id (store/keys.py refused it)
                record = {}
            path = recording_path(console.config.recordings.dir, self.call_id, record)
            if path is None:
                _headers(request)
                request.setResponseCode(404)
                return pages.message("no recording for this call", False).encode()
            request.setHeader(b"cache-control", b"no-store")
            request.setHeader(b"x-content-type-options", b"nosniff")
            audio = File(str(path), defaultType="audio/wav")
            audio.contentTypes = {".wav": "audio/wav"}
            body = audio.render(request)
            return body if body != NOT_DONE_YET else None
        return _run(request, serve)


class _Static(Resource):
    def __init__(self) -> None:
        super().__init__()
        folder = resources.files("ccengine.console").joinpath("static")
        self.files = {name: folder.joinpath(name).read_bytes() for name in STATIC}

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _StaticFile(self, path.decode("ascii", "replace"))


class _StaticFile(Resource):
    isLeaf = True

    def __init__(self, parent: _Static, name: str):
        super().__init__()
        self.parent = parent
        self.name = name

    def render_GET(self, request: Request) -> bytes:
        body = self.parent.files.get(self.name)
        if body is None:
            _headers(request)
            request.setResponseCode(404)
            return b"not found"
        _headers(request, f"{STATIC[self.name]}; charset=utf-8".encode())
        request.setHeader(b"cache-control", b"private, max-age=3600")
        return body
