"""HTTP: /metrics, /healthz and the JSON API helpers (bearer token, bounded JSON bodies).

Binds to loopback by default (config http.bind). API resources of later features derive from
`ApiResource` and get: token check (401 without a token, 403 with a wrong one, compared in
constant time), body size limit (413), JSON parsing (400 with a message), JSON answers.
"""
from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.web.resource import Resource
from twisted.web.http import HTTPChannel
from twisted.web.server import NOT_DONE_YET, Request, Site


@dataclass
class Health:
    """Callables answering the health questions; each returns True when healthy."""
    ami_connected: Callable[[], bool]
    redis_reachable: Callable[[], bool]
    fastagi_listening: Callable[[], bool]
    ami_required: bool = True
    # From the features: True when healthy (informational ones may report any JSON value).
    features: dict[str, Callable[[], Any]] = field(default_factory=dict)
    # Reported but not making the engine "degraded" (a restart would not help them).
    informational: frozenset[str] = frozenset({"redis_accepts_writes"})

    def report(self) -> tuple[bool, dict[str, Any]]:
        checks = {"ami_connected": self.ami_connected(), "redis_reachable": self.redis_reachable(),
                  "fastagi_listening": self.fastagi_listening()}
        checks.update({name: check() for name, check in self.features.items()})
        required = {k: v for k, v in checks.items() if k not in self.informational
                    and (self.ami_required or k != "ami_connected")}
        return all(required.values()), checks


class _Snapshot:
    """Metric families collected once, as a registry-like object for generate_latest."""

    def __init__(self, families: list):
        self.families = families

    def collect(self) -> list:
        return self.families


class MetricsResource(Resource):
    """The Prometheus text, rendered at most once per `cache_seconds`: clients scraping in a
    loop cost one rendering per interval, not one each. The families are collected on the
    reactor (they read live engine state, about 4 ms for the full engine), the text is
    formatted in a thread (about 5 ms), and requests arriving meanwhile share that rendering."""
    isLeaf = True

    def __init__(self, registry: CollectorRegistry, cache_seconds: float = 0.0,
                 clock: Any = None, in_thread: Callable[..., Any] | None = None):
        super().__init__()
        self.registry = registry
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.in_thread = in_thread
        self._cached: tuple[float, bytes] | None = None
        self._rendering: list[Request] | None = None

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        if self.clock is None or self.cache_seconds <= 0:
            return generate_latest(self.registry)
        now = self.clock.seconds()
        if self._cached is not None and now - self._cached[0] < self.cache_seconds:
            return self._cached[1]
        if self.in_thread is None:
            self._cached = (now, generate_latest(self.registry))
            return self._cached[1]
        if self._rendering is None:
            self._rendering = []
            snapshot = _Snapshot(list(self.registry.collect()))
            d = self.in_thread(generate_latest, snapshot)
            d.addCallbacks(lambda text: self._rendered(now, text), self._failed)
        self._rendering.append(request)
        return NOT_DONE_YET

    def _rendered(self, at: float, text: bytes) -> None:
        self._cached = (at, text)
        waiting, self._rendering = self._rendering or [], None
        for request in waiting:
            if not request.finished and not getattr(request, "_disconnected", False):
                request.write(text)
                request.finish()

    def _failed(self, failure: Any) -> None:
        waiting, self._rendering = self._rendering or [], None
        for request in waiting:
            if not request.finished and not getattr(request, "_disconnected", False):
                request.setResponseCode(500)
                request.finish()


class HealthResource(Resource):
    isLeaf = True

    def __init__(self, health: Health):
        super().__init__()
        self.health = health

    def render_GET(self, request: Request) -> bytes:
        ok, checks = self.health.report()
        request.setResponseCode(200 if ok else 503)
        return json_body(request, {"status": "ok" if ok else "degraded", **checks})


class HttpError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def json_body(request: Request, payload: Any) -> bytes:
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"x-content-type-options", b"nosniff")
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")


class ApiResource(Resource):
    """Base for JSON API resources: subclasses implement `handle(method, request, body)`."""

    def __init__(self, token: str | None, max_body_bytes: int):
        super().__init__()
        self.token = token
        self.max_body_bytes = max_body_bytes

    def render(self, request: Request) -> bytes:
        try:
            self.check_token(request)
            body = self.read_json(request) if request.method in (b"POST", b"PUT", b"PATCH") else None
            code, payload = self.handle(request.method.decode("ascii", "replace"), request, body)
        except HttpError as exc:
            code, payload = exc.code, {"error": exc.message}
        request.setResponseCode(code)
        return json_body(request, payload)

    def handle(self, method: str, request: Request, body: Any) -> tuple[int, Any]:
        raise HttpError(405, f"method {method} not allowed")

    def getChild(self, path: bytes, request: Request) -> Resource:
        return NotFound()

    def check_token(self, request: Request) -> None:
        if not self.token:
            raise HttpError(403, "the API is disabled: no API token is configured")
        header = request.getHeader(b"authorization") or b""
        if not header.startswith(b"Bearer "):
            raise HttpError(401, "missing bearer token")
        if not hmac.compare_digest(header[7:].strip(), self.token.encode("utf-8")):
            raise HttpError(403, "wrong token")

    def read_json(self, request: Request) -> Any:
        if getattr(request, "body_too_large", False):
            raise HttpError(413, f"body larger than {self.max_body_bytes} bytes")
        length = request.getHeader(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            raise HttpError(413, f"body larger than {self.max_body_bytes} bytes")
        raw = request.content.read(self.max_body_bytes + 1) if request.content else b""
        if len(raw) > self.max_body_bytes:
            raise HttpError(413, f"body larger than {self.max_body_bytes} bytes")
        try:
            return json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(400, f"body is not JSON: {exc}") from None
        except RecursionError:
            raise HttpError(400, "body is nested too deeply") from None
        except ValueError as exc:       # e.g. a number of 60,000 digits (Python's int limit)
            raise HttpError(400, f"body is not usable JSON: {str(exc)[:100]}") from None


class NotFound(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setResponseCode(404)
        return json_body(request, {"error": "no such resource"})


class ApiRoot(Resource):
    """A directory (/ and /api): its children, anything else is a JSON 404; the directory
    itself answers with the list of what it holds (no secret: the API's resources still ask
    for the bearer token)."""

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self if path == b"" else NotFound()

    def render(self, request: Request) -> bytes:
        base = request.path.rstrip(b"/").decode("ascii", "replace")
        return json_body(request, {"resources": sorted(
            f"{base}/{name.decode('ascii', 'replace')}" for name in self.children if name)})


class BoundedRequest(Request):
    """A request that stops storing its body past `max_body_bytes` while it streams in
    (Twisted would otherwise buffer all of it before the resource can answer 413)."""
    max_body_bytes = 65536
    body_too_large = False

    def setHeader(self, name: Any, value: Any) -> None:
        # Twisted announces `Server: TwistedWeb/<version>` on every answer; the version helps
        # nobody but an attacker, so it is not sent.
        if (name if isinstance(name, bytes) else str(name).encode()).lower() == b"server":
            return
        super().setHeader(name, value)

    def handleContentChunk(self, data: bytes) -> None:
        content = self.content
        if self.body_too_large or content is None or \
                content.tell() + len(data) > self.max_body_bytes:
            self.body_too_large = True
            return
        super().handleContentChunk(data)


class QuietSite(Site):
    """A Site whose access log leaves out the paths scraped all day (`/metrics`, `/healthz`):
    Prometheus and health checks would otherwise be most of the log."""
    quiet_paths = frozenset({b"/metrics", b"/healthz"})

    def log(self, request: Any) -> None:
        if request.path not in self.quiet_paths:
            super().log(request)


class GuardedChannel(HTTPChannel):
    """An HTTP connection whose request headers must be complete within `header_timeout`,
    however slowly they trickle in (Twisted's idle timeout restarts at every byte, so a client
    sending one byte every 10 s was never closed)."""
    header_timeout = 10.0

    def connectionMade(self) -> None:
        super().connectionMade()
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        # callLater: the reactor's, as Twisted's own timeouts use (TimeoutMixin).
        self._header_deadline = self.callLater(self.header_timeout, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        deadline = getattr(self, "_header_deadline", None)
        if deadline is not None and deadline.active():
            deadline.cancel()
        self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        self.factory.header_timeouts += 1
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]  # a TCP transport

    def allHeadersReceived(self) -> None:
        self._disarm_header_deadline()
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        super().allContentReceived()
        if self.transport is not None and not getattr(self.transport, "disconnecting", False):
            self._arm_header_deadline()          # the next request on this connection

    def connectionLost(self, reason: Any = None) -> None:
        self._disarm_header_deadline()
        self.factory.connections -= 1
        super().connectionLost(reason)


class GuardedSite(QuietSite):
    """At most `max_connections` HTTP connections; more are refused at once. The HTTP server
    shares the engine's file descriptors with FastAGI: without a cap, slow clients could use
    them all and every caller's AGI connection would fail."""
    protocol = GuardedChannel  # type: ignore[assignment]  # an HTTPChannel subclass
    max_connections = 256
    header_timeout = 10.0
    connections = 0
    refused = 0
    header_timeouts = 0

    def buildProtocol(self, addr: Any) -> Any:
        if self.connections >= self.max_connections:
            self.refused += 1
            return None
        channel = super().buildProtocol(addr)
        if channel is not None:
            channel.header_timeout = self.header_timeout
            self.connections += 1
        return channel


def build_site(root: Resource, max_body_bytes: int, max_connections: int = 256,
               header_timeout: float = 10.0) -> Site:
    site = GuardedSite(root)
    site.max_connections = max_connections
    site.header_timeout = header_timeout
    site.requestFactory = type(  # type: ignore[assignment]  # a Request subclass, made here
        "Request", (BoundedRequest,), {"max_body_bytes": max_body_bytes})
    return site


def build_root(registry: CollectorRegistry, health: Health, metrics_cache_seconds: float = 0.0,
               clock: Any = None, in_thread: Callable[..., Any] | None = None) -> Resource:
    root = ApiRoot()
    root.putChild(b"metrics", MetricsResource(registry, metrics_cache_seconds, clock, in_thread))
    root.putChild(b"healthz", HealthResource(health))
    root.putChild(b"api", ApiRoot())
    return root
