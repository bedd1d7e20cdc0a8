"""Wiring of the caller's path: the hotline route, its stores, the caller lists from files."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.logger import Logger

from ccengine.calls.hotline import ClosedHoursOffer, HotlineRoute, HotlineSettings, RepeatComplaints
from ccengine.calls.metrics import HotlineMetrics
from ccengine.calls.sources import read_list
from ccengine.config import CallersConfig
from ccengine.feature import EngineContext, Feature
from ccengine.store.base import StoreUnavailable
from ccengine.calls.records import CallRecordStore
from ccengine.calls.customers import CustomerStore
from ccengine.runtime.pending import PendingWrites
from ccengine.calls.spool import RecordSpool


def build(ctx: EngineContext, *, records: CallRecordStore,
          closed_offer: ClosedHoursOffer | None = None,
          repeat: RepeatComplaints | None = None,
          availability: Callable[[str], int | None] | None = None) -> Feature:
    """The hotline with what other features provide: the closed-hours callback offer (waiting),
    the repeat-complainant check (complaints) and the staffing per queue (queues picture)."""
    config = ctx.config
    customers = CustomerStore(ctx.redis)
    settings = HotlineSettings(company=config.company, ivr=config.ivr, callers=config.callers,
                               queues=dict(config.queues))
    # Call records are written after the caller is routed; shutdown waits for them.
    writes = PendingWrites(ctx.clock, drain_timeout=2 * config.redis.timeout + 1)
    hotline = HotlineRoute(settings, customers, records, ctx.prompter,
                           HotlineMetrics(ctx.registry, config.queues), ctx.clock, writes,
                           closed_offer=closed_offer, repeat=repeat, availability=availability)
    metrics = hotline.metrics
    spool = RecordSpool(config.state_dir / "spool", records, ctx.clock, ctx.registry)
    hotline.spool = spool
    lists = CallerListsLoader(config.callers, customers, ctx.clock, metrics)
    if config.callers.block_from_file_when_redis_down:
        hotline.file_blocklist = lambda: lists.file_blocklist
    return Feature(routes={"hotline": hotline}, services=[lists, writes, spool],
                   health={"caller_lists_loaded": lambda: lists.loaded,
                           "redis_accepts_writes": lambda: spool.waiting == 0},
                   on_reload=[lists.load])


class CallerListsLoader(Service):
    """Keeps callers.blocklist_file and callers.vip_file in Redis, and heals them.

    Loaded at start, on SIGHUP (app.py) and by `ccengine callers reload`; after each complete
    load the marker key `cc:callerlists:loaded` is set. Every CHECK_INTERVAL seconds the
    loader looks for the marker: a Redis that lost it (restarted empty, or unreachable when the
    engine started) gets the lists again. Bad lines are logged with their line numbers and
    skipped. The blocklist file is also kept in memory: while Redis cannot answer, a caller on
    it is still refused (callers.block_from_file_when_redis_down, docs/records.md)."""
    log = Logger()
    CHECK_INTERVAL = 10.0

    def __init__(self, callers: CallersConfig, customers: CustomerStore, clock=None,
                 metrics: HotlineMetrics | None = None):
        self.callers = callers
        self.customers = customers
        self.clock = clock
        self.metrics = metrics
        self.done = None
        self.loaded = not (callers.blocklist_file or callers.vip_file)  # nothing to load
        self.file_blocklist: frozenset[str] = frozenset()
        self._timer: Any = None

    def startService(self) -> None:
        super().startService()
        self.done = self.load()
        if self.clock is not None and (self.callers.blocklist_file or self.callers.vip_file):
            from twisted.internet.task import LoopingCall
            self._timer = LoopingCall(self.check)
            self._timer.clock = self.clock
            self._timer.start(self.CHECK_INTERVAL, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self._timer is not None and self._timer.running:
            self._timer.stop()

    def load(self):
        from twisted.internet.defer import Deferred
        return Deferred.fromCoroutine(self._load())

    def check(self):
        """Reload when the lists are not known to be in this Redis (marker missing)."""
        from twisted.internet.defer import Deferred

        async def look() -> None:
            try:
                present = await self.customers.lists_marker()
            except StoreUnavailable:
                self.loaded = False
                return
            if not present:
                if self.loaded:
                    self.log.warn("caller lists are gone from Redis (restarted empty?): "
                                  "loading them again")
                await self._load()
        return Deferred.fromCoroutine(look())

    async def _load(self) -> dict[str, int]:
        loaded, complete = {}, True
        for kind, path in (("blocklist", self.callers.blocklist_file), ("vip", self.callers.vip_file)):
            if not path:
                continue
            parsed = read_list(path, with_names=(kind == "vip"))
            for problem in parsed.problems:
                self.log.warn("caller list: {problem}", problem=problem)
            if kind == "blocklist":
                self.file_blocklist = frozenset(n for n, _ in parsed.entries)
            try:
                if kind == "blocklist":
                    await self.customers.block([n for n, _ in parsed.entries])
                else:
                    await self.customers.mark_vips(parsed.entries)
            except (StoreUnavailable, ValueError) as exc:   # reported, not fatal; retried
                self.log.error("caller list {path} not loaded: {exc}", path=path, exc=exc)
                complete = False
                continue
            loaded[kind] = len(parsed.entries)
            if self.metrics is not None:
                self.metrics.list_entries.labels(kind).set(len(parsed.entries))
            self.log.info("caller list {path}: {n} {kind} entries", path=path,
                          n=len(parsed.entries), kind=kind)
        if complete and loaded:
            try:
                await self.customers.set_lists_marker()
            except StoreUnavailable:
                complete = False
        self.loaded = complete
        if complete and loaded and self.metrics is not None and self.clock is not None:
            self.metrics.lists_loaded.set(self.clock.seconds())
        return loaded
