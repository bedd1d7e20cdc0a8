"""Live updates: the server pushes each console page the panels that changed (server-sent
events), within `console.push_delay` seconds of the change that caused them.

What counts as a change: the queue picture (members, callers, a resync), a floor figure
(window.py), an agent state written (agents/state.py), an action from the console, and a
refresh every REFRESH seconds for what changes in Redis without an AMI event (tickets,
callbacks, call records) and for deadlines becoming overdue. Changes are gathered for
`push_delay`, the board is read once, each panel is rendered once per (language, role) and
sent only to the pages whose copy differs.

Each stream is re-checked every KEEPALIVE seconds: a comment line keeps proxies from closing
it, and a stream whose session ended (logout, expiry, account removed) is closed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ccengine.console import pages
from ccengine.console.recordings import recording_path
from ccengine.store.base import StoreUnavailable

log = Logger()
REFRESH = 5.0
KEEPALIVE = 15.0
RECENT_CALLS = 15


@dataclass(eq=False)
class Stream:
    request: Any
    lang: str
    can_act: bool
    cookie: str
    sent: dict[str, str] = field(default_factory=dict)
    open: bool = True

    def send(self, event: str, data: str) -> None:
        self.request.write(event_text(event, data).encode("utf-8"))


def event_text(event: str, data: str) -> str:
    """One server-sent event (the wire format Stream.send writes)."""
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n"


class LiveHub(Service):
    def __init__(self, board: Any, clock: Any, accounts: Any, records: Any, config: Any,
                 zone: Any, max_streams: int = 100):
        self.board = board
        self.clock = clock
        self.accounts = accounts
        self.records = records
        self.config = config
        self.zone = zone
        self.push_delay = config.console.push_delay
        self.max_streams = max_streams
        self.streams: set[Stream] = set()
        self._pending: Any = None
        self._flushing: Deferred | None = None
        self._again = False
        self._loops = [LoopingCall(self.changed), LoopingCall(self._keepalive)]
        for loop in self._loops:
            loop.clock = clock

    # --- service --------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        self._loops[0].start(REFRESH, now=False)
        self._loops[1].start(KEEPALIVE, now=False)

    def stopService(self) -> None:
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        for stream in list(self.streams):
            self._close(stream)

    # --- streams --------------------------------------------------------------------------
    def full(self) -> bool:
        return len(self.streams) >= self.max_streams

    def add(self, stream: Stream) -> None:
        self.streams.add(stream)
        stream.request.notifyFinish().addBoth(lambda _: self._gone(stream))
        self.changed()

    def _gone(self, stream: Stream) -> None:
        stream.open = False
        self.streams.discard(stream)

    def _close(self, stream: Stream) -> None:
        self._gone(stream)
        try:
            stream.request.finish()
        except Exception:   # already finished or the connection is gone
            pass

    # --- changes --------------------------------------------------------------------------
    def changed(self, *_: Any) -> None:
        """Something on the floor changed: push within push_delay."""
        if not self.streams:
            return
        if self._flushing is not None:
            self._again = True
            return
        if self._pending is None or not self._pending.active():
            self._pending = self.clock.callLater(self.push_delay, self._flush)

    def _flush(self) -> Deferred:
        self._pending = None
        self._flushing = Deferred.fromCoroutine(self.push())

        def done(result: Any) -> Any:
            self._flushing = None
            if self._again:
                self._again = False
                self.changed()
            return result
        self._flushing.addBoth(done)
        self._flushing.addErrback(lambda f: log.failure("console push failed", f))
        return self._flushing

    async def push(self) -> None:
        snapshot = await self.board.snapshot()
        calls = await self._recent_calls()
        rendered: dict[tuple[str, bool], dict[str, str]] = {}
        for stream in list(self.streams):
            key = (stream.lang, stream.can_act)
            if key not in rendered:
                rendered[key] = pages.fragments(snapshot, stream.lang, stream.can_act, calls,
                                                self.zone)
            for panel, text in rendered[key].items():
                if stream.open and stream.sent.get(panel) != text:
                    stream.send(panel, text)
                    stream.sent[panel] = text

    async def render(self, lang: str, can_act: bool) -> tuple[dict[str, str], float]:
        """The panels as they are now (the page's first paint)."""
        snapshot = await self.board.snapshot()
        return pages.fragments(snapshot, lang, can_act, await self._recent_calls(),
                               self.zone), snapshot.now

    async def _recent_calls(self) -> list[dict[str, str]]:
        try:
            ids = await self.records.recent(RECENT_CALLS)
            out = []
            for call_id in ids:
                record = dict(await self.records.get(call_id))
                if not record:
                    continue
                record["_id"] = call_id
                if record.get("recording"):
                    found = recording_path(self.config.recordings.dir, call_id, record)
                    record["_has_recording"] = "1" if found is not None else ""
                out.append(record)
            return out
        except (StoreUnavailable, ValueError) as exc:
            log.warn("console: recent calls not read ({e})", e=exc)
            return []

    async def _check_sessions(self) -> None:
        for stream in list(self.streams):
            try:
                alive = await self.accounts.session(stream.cookie)
            except StoreUnavailable:
                continue            # Redis down: keep the page, it says nothing new anyway
            if alive is None:
                self._close(stream)

    def _keepalive(self) -> Deferred:
        for stream in list(self.streams):
            if stream.open:
                stream.request.write(b": keepalive\n\n")
        d = Deferred.fromCoroutine(self._check_sessions())
        d.addErrback(lambda f: log.failure("console session check failed", f))
        return d
