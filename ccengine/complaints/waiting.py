"""Complainants waiting too long: moved from the complaint queue to the supervisor queue,
keeping their place, and counted.

Mechanism, aligned with dialplans/extensions_ccengine.conf ([ccengine-wait], label
`withdrawn`): every `wait_check_interval` seconds the engine looks at the complaint queue's
waiting callers in the queue picture (ccengine/queues/: channel, uniqueid, the start of the
current Queue() call, and the queue priority where a QueueStatus gave it). For each caller
waiting longer than `wait_limit_seconds` it sets `CC_PRIORITY` on the caller's channel to the
business priority within the caller's queue priority (AMI Setvar; the dialplan adds the
caller's place, waiting/priority.py) and sends `QueueWithdrawCaller(Queue=complaint,
Caller=<channel>, WithdrawInfo=supervisor)`. Asterisk takes the caller out (~4 s later,
QUEUESTATUS=WITHDRAW, QUEUE_WITHDRAW_INFO; ami6, AMI note 6), and the dialplan re-queues them
in `supervisor` at the same place.

The wait counts from the caller's first queue entry as recorded by the waiting feature
(`cc:line:entry:{queue}:{uniqueid}` fields `joined`, from the dialplan's CC_WAIT_SINCE, and
`priority`, the QUEUE_PRIO), because the dialplan re-enters Queue() after every announcement;
without that record (not announced yet) the current Queue() call's start is used. A Redis key
per caller (`cc:complaints:moved:{uniqueid}`, SET NX) makes the move happen once, also across
engine restarts.
"""
from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger

from ccengine.ami.protocol import AmiError
from ccengine.complaints.metrics import ComplaintMetrics
from ccengine.complaints.escalation import CHANNEL_RE
from ccengine.store import keys
from ccengine.store.base import RedisConnection, StoreUnavailable
from ccengine.runtime.periodic import PeriodicService
from ccengine.queues.picture import Caller, QueuePicture
from ccengine.waiting.priority import base_of

log = Logger()
_UNIQUEID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MOVED_TTL = 3600


class WaitingComplainants(PeriodicService):
    name = "complaints-waiting"  # type: ignore[assignment]  # Twisted types Service.name as None

    def __init__(self, conn: RedisConnection, ami: Any, picture: QueuePicture, clock: Any,
                 metrics: ComplaintMetrics, queue: str, target_queue: str, wait_limit: float,
                 interval: float):
        super().__init__(clock, interval)
        self.conn = conn
        self.ami = ami
        self.picture = picture
        self.metrics = metrics
        self.queue = queue
        self.target_queue = target_queue
        self.wait_limit = wait_limit

    async def round(self) -> int:
        return await self.check()

    async def check(self) -> int:
        """One look at the complaint queue; returns how many callers were moved."""
        if self.ami is None or not self.ami.connected or not self.picture.synced:
            return 0
        now = self.clock.seconds()
        moved = 0
        for caller in self.picture.waiting(self.queue):
            try:
                moved += await self._consider(caller, now)
            except StoreUnavailable as exc:
                log.warn("waiting complainants: Redis unavailable ({exc}); next check retries",
                         exc=exc)
                break
        return moved

    async def _consider(self, caller: Caller, now: float) -> int:
        channel, uniqueid = caller.channel, caller.uniqueid
        if not CHANNEL_RE.fullmatch(channel) or not _UNIQUEID_RE.fullmatch(uniqueid):
            log.warn("waiting caller with unusable fields skipped: {ch!r:.60}", ch=channel)
            return 0
        entry = await self.conn.call(
            lambda r: r.hmget(keys.line_entry(self.queue, uniqueid), "joined", "priority"))
        joined, stored_priority = entry
        waited = now - float(joined) if joined else now - caller.entered
        if waited <= self.wait_limit:
            return 0
        priority = _int(stored_priority) if stored_priority else caller.priority
        first = await self.conn.call(lambda r: r.set(keys.complaint_moved(uniqueid), "1",
                                                     nx=True, ex=MOVED_TTL))
        if not first:
            return 0        # already moved (the withdraw takes a few seconds to show)
        try:
            ami = self.ami.on_server(caller.server)        # the caller's Asterisk
            await ami.send_action("Setvar", Channel=channel, Variable="CC_PRIORITY",
                                  Value=str(base_of(str(priority or 0))))
            await ami.send_action("QueueWithdrawCaller", Queue=self.queue, Caller=channel,
                                  WithdrawInfo=self.target_queue)
        except AmiError as exc:
            # "No such caller" (ami6, 2nd withdraw): the caller left meanwhile.
            self.metrics.moved.labels("failed").inc()
            log.warn("could not move {ch} to {target}: {exc}", ch=channel,
                     target=self.target_queue, exc=exc)
            return 0
        self.metrics.moved.labels("moved").inc()
        log.info("complainant {ch} waited {w:.0f} s in {queue}: moved to {target} with "
                 "priority {p}", ch=channel, w=waited, queue=self.queue, target=self.target_queue,
                 p=priority)
        return 1


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
