"""Wiring of the caller's path: the hotline route, its stores, the caller lists from files."""
from __future__ import annotations

from collections.abc import Callable

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
    return Feature(routes={"hotline": hotline},
                   services=[CallerListsLoader(config.callers, customers), writes])


class CallerListsLoader(Service):
    """Loads callers.blocklist_file and callers.vip_file into Redis when the engine starts.

    Bad lines are logged with their line numbers and skipped; a Redis that is down at start is
    logged too (the lists are additive and already in Redis from earlier starts)."""
    log = Logger()

    def __init__(self, callers: CallersConfig, customers: CustomerStore):
        self.callers = callers
        self.customers = customers
        self.done = None

    def startService(self) -> None:
        super().startService()
        self.done = self.load()

    def load(self):
        from twisted.internet.defer import Deferred
        return Deferred.fromCoroutine(self._load())

    async def _load(self) -> dict[str, int]:
        loaded = {}
        for kind, path in (("blocklist", self.callers.blocklist_file), ("vip", self.callers.vip_file)):
            if not path:
                continue
            parsed = read_list(path, with_names=(kind == "vip"))
            for problem in parsed.problems:
                self.log.warn("caller list: {problem}", problem=problem)
            try:
                if kind == "blocklist":
                    await self.customers.block([n for n, _ in parsed.entries])
                else:
                    await self.customers.mark_vips(parsed.entries)
            except (StoreUnavailable, ValueError) as exc:   # reported, not fatal
                self.log.error("caller list {path} not loaded: {exc}", path=path, exc=exc)
                continue
            loaded[kind] = len(parsed.entries)
            self.log.info("caller list {path}: {n} {kind} entries", path=path,
                          n=len(parsed.entries), kind=kind)
        return loaded
