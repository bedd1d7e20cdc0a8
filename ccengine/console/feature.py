"""Wiring of the supervisor console (docs/console.md): the page at /console, its live updates,
the supervisors' actions and the recordings sweeper.

It reads what the other features provide (the queue picture, the queue statistics' outcomes,
the agents' states and controls, tickets, callbacks, call records) and subscribes to nothing
on AMI itself.
"""
from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ccengine.agents.feature import AgentsFeature
from ccengine.calls.records import CallRecordStore
from ccengine.complaints.feature import ComplaintsFeature
from ccengine.console.accounts import AccountStore
from ccengine.console.actions import AuditLog, ConsoleActions
from ccengine.console.board import Board
from ccengine.console.live import LiveHub
from ccengine.console.recordings import RecordingSweeper
from ccengine.console.web import Console
from ccengine.console.window import QueueWindows
from ccengine.feature import EngineContext, Feature
from ccengine.queues.picture import QueuePicture
from ccengine.runtime.pending import PendingWrites
from ccengine.stats.feature import StatsFeature
from ccengine.waiting.callbacks import CallbackStore

log = Logger()


# ami.shared: how often an engine reads today's figures again, written by the engines that
# count each Asterisk server's events (its own page then shows the whole centre's day).
SHARED_RELOAD = 10.0


class _LoadToday(Service):
    """Reads today's floor figures from Redis once the engine runs (a restart keeps the day),
    and with ami.shared every SHARED_RELOAD seconds."""

    def __init__(self, windows: QueueWindows, clock: Any, every: float | None = None):
        self.windows = windows
        self.clock = clock
        self.every = every
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        if self.every is None:
            self._load()
            return
        self._loop = LoopingCall(self._load)
        self._loop.clock = self.clock
        self._loop.start(self.every, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _load(self) -> Deferred:
        d = Deferred.fromCoroutine(self.windows.load())
        d.addCallback(lambda _: [listener("") for listener in self.windows.listeners])
        d.addErrback(lambda f: log.warn("console: today's figures not loaded ({e}); counting "
                                        "from now", e=f.getErrorMessage()))
        return d


def build(ctx: EngineContext, *, stats: StatsFeature, staff: AgentsFeature,
          handled: ComplaintsFeature, records: CallRecordStore,
          callbacks: CallbackStore) -> Feature:
    config = ctx.config
    if not config.console.enabled:
        return Feature()
    picture = ctx.queues.picture if ctx.queues is not None else QueuePicture(ctx.clock)
    writes = PendingWrites(ctx.clock, drain_timeout=2 * config.redis.timeout + 1)
    writes.name = "console-pending-writes"
    windows = QueueWindows(config.queues, config.company.timezone, ctx.clock, ctx.redis, writes)
    stats.stats.consumer.observers.append(windows)
    accounts = AccountStore(ctx.redis, config.console.session_hours,
                            config.console.login_max_failures, config.console.login_failure_window)
    audit = AuditLog(ctx.redis, config.console.audit_keep)
    board = Board(config, ctx.clock, picture, windows, staff.directory, staff.states, records,
                  callbacks, handled.complaints.store, audit)
    zone = ZoneInfo(config.company.timezone)
    hub = LiveHub(board, ctx.clock, accounts, records, config, zone)
    actions = ConsoleActions(config, ctx.clock, ctx.ami, picture, staff.directory, staff.states,
                             staff.codes, staff.staffing, handled.complaints, audit)

    def picture_changed(kind: str, what: object) -> None:
        if kind in ("member", "member_removed", "resync"):
            board.agents_changed()
        hub.changed()
    picture.listen(picture_changed)
    windows.listeners.append(hub.changed)
    staff.states.listeners.append(hub.changed)

    sweeper = RecordingSweeper(config.recordings.dir, config.recordings.retention_days,
                               config.recordings.sweep_interval, ctx.clock, ctx.registry)
    sweeper.clock = ctx.clock
    reload = SHARED_RELOAD if config.ami.shared else None
    return Feature(services=[writes, _LoadToday(windows, ctx.clock, reload), hub],
                   singletons=[sweeper],
                   pages={"console": Console(accounts, hub, actions, records, config, ctx.clock)})
