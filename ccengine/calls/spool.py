"""Call records that Redis refused, kept on disk until Redis takes them (docs/records.md).

When a record write fails (Redis down, frozen, out of memory, read-only), the record goes to an
append-only file, `<state_dir>/spool/call-records.jsonl`, one JSON object per line. Every
`INTERVAL` seconds the spool is replayed: the file is renamed aside (new failures start a new
file meanwhile), each record is written again in order, and what still fails is put back. A
record is in Redis or in the spool, never only in the log, unless the spool's disk is full or
the spool has reached MAX_BYTES (then the record is logged in full, as before).

Metrics: ccengine_call_records_spooled_total (records that went to the spool),
ccengine_call_records_spool_pending (records waiting in it now); /healthz says
`redis_accepts_writes: false` while records wait, which tells "Redis answers reads but
refuses writes" apart from "Redis unreachable".
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ccengine.store.base import StoreUnavailable

log = Logger()
INTERVAL = 5.0
MAX_BYTES = 200 * 1024 * 1024      # about 600,000 records of 300 bytes


class RecordSpool(TimerService):
    def __init__(self, directory: Path, records: Any, clock: Any, registry: CollectorRegistry):
        super().__init__(INTERVAL, self.replay)
        self.clock = clock
        self.path = directory / "call-records.jsonl"
        self.aside = directory / "call-records.replaying.jsonl"
        self.records = records
        self.spooled = Counter("ccengine_call_records_spooled_total",
                               "Call records Redis refused, kept in the spool file",
                               registry=registry)
        self.pending = Gauge("ccengine_call_records_spool_pending",
                             "Call records waiting in the spool file for Redis",
                             registry=registry)
        self._pending = self._count()
        self.pending.set(self._pending)
        self._replaying = False

    @property
    def waiting(self) -> int:
        return self._pending

    def add(self, call_id: str, started: float, fields: dict) -> bool:
        """Keep a refused record; False when it could not be kept (disk full, spool full)."""
        line = json.dumps({"id": call_id, "started": started, "fields": fields},
                          ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size + len(line) > MAX_BYTES:
                return False
            with self.path.open("a", encoding="utf-8") as spool:
                spool.write(line)
                spool.flush()
                os.fsync(spool.fileno())
        except OSError as exc:
            log.error("call record spool {path} not writable: {e}", path=self.path, e=exc)
            return False
        self._pending += 1
        self.pending.set(self._pending)
        self.spooled.inc()
        return True

    def replay(self) -> Deferred | None:
        if self._replaying or not (self.path.exists() or self.aside.exists()):
            return None
        self._replaying = True
        d = Deferred.fromCoroutine(self._replay())

        def done(result: Any) -> Any:
            self._replaying = False
            return result
        d.addBoth(done)
        d.addErrback(lambda f: log.failure("call record spool replay failed", f))
        return d

    async def _replay(self) -> int:
        if not self.aside.exists():
            os.replace(self.path, self.aside)        # new refusals start a new file
        lines = self.aside.read_text(encoding="utf-8").split("\n")
        written = 0
        left: list[str] = []
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                await self.records.save(item["id"], float(item["started"]), item["fields"])
            except StoreUnavailable:
                left = [x for x in lines[index:] if x.strip()]
                break
            except (ValueError, KeyError, TypeError):
                log.error("call record spool: unreadable line dropped: {line!r:.200}", line=line)
                continue
            written += 1
        if left:
            with self.path.open("a", encoding="utf-8") as spool:
                spool.write("\n".join(left) + "\n")
        self.aside.unlink(missing_ok=True)
        self._pending = self._count()
        self.pending.set(self._pending)
        if written:
            log.info("call record spool: {n} record(s) written to Redis, {m} waiting",
                     n=written, m=self._pending)
        return written

    def _count(self) -> int:
        total = 0
        for path in (self.path, self.aside):
            try:
                with path.open("rb") as spool:
                    total += sum(1 for line in spool if line.strip())
            except OSError:
                pass
        return total
