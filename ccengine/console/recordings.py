"""Call recordings: finding one for the console, and the retention sweeper.

Asterisk's MixMonitor writes `<recordings.dir>/<call id>.wav` (dialplan
[ccengine-agent-connect]); the hotline stores the file NAME on the call record (`recording`).
A recording is found from a call id only: the id must be a valid call id, the record must
name exactly `<id>.wav`, and the resolved path must lie in the recordings directory, so no
request can reach another file (`..`, absolute paths and symlinks out of the directory are
refused).

The sweeper deletes files in the directory older than `retention_days` (by modification time,
i.e. the end of the call) every `sweep_interval` seconds, in a thread (a large directory must
not stall the reactor), and counts what it did in ccengine_recordings_deleted_total and
ccengine_recordings_sweep_errors_total; ccengine_recordings_last_sweep_timestamp_seconds says
when it last finished.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge
from twisted.application.internet import TimerService
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

log = Logger()
CALL_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
FILE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}\.wav$")


def recording_path(directory: str, call_id: str, record: dict) -> Path | None:
    """The recording of a call, or None (no such call, not recorded, file missing, outside)."""
    if not CALL_ID_RE.fullmatch(call_id or "") or ".." in call_id:
        return None
    name = record.get("recording", "")
    if name != f"{call_id}.wav" or not FILE_RE.fullmatch(name):
        return None
    base = Path(directory).resolve()
    path = (base / name).resolve()
    if path.parent != base or not path.is_file():
        return None
    return path


def sweep(directory: str, older_than: float) -> tuple[int, int]:
    """Delete `*.wav` files modified before `older_than` (epoch); (deleted, errors)."""
    deleted = errors = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0, 0
    except OSError:
        return 0, 1
    for entry in entries:
        if not FILE_RE.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and \
                    entry.stat(follow_symlinks=False).st_mtime < older_than:
                os.unlink(entry.path)
                deleted += 1
        except OSError:
            errors += 1
    return deleted, errors


class RecordingSweeper(TimerService):
    def __init__(self, directory: str, retention_days: int, interval: float, clock,
                 registry: CollectorRegistry):
        super().__init__(interval, self.run)
        self.clock = clock
        self.directory = directory
        self.retention = retention_days * 86400
        self.deleted = Counter("ccengine_recordings_deleted_total",
                               "Call recordings deleted after the retention period",
                               registry=registry)
        self.errors = Counter("ccengine_recordings_sweep_errors_total",
                              "Recordings (or the directory) the sweeper could not handle",
                              registry=registry)
        self.last = Gauge("ccengine_recordings_last_sweep_timestamp_seconds",
                          "When the recordings sweeper last finished", registry=registry)

    def run(self):
        cutoff = self.clock.seconds() - self.retention
        d = deferToThread(sweep, self.directory, cutoff)

        def done(result: tuple[int, int]) -> None:
            deleted, errors = result
            self.deleted.inc(deleted)
            self.errors.inc(errors)
            self.last.set(self.clock.seconds())
            if deleted or errors:
                log.info("recordings sweeper: {n} deleted, {e} errors in {d}", n=deleted,
                         e=errors, d=self.directory)
        d.addCallback(done)
        d.addErrback(lambda f: log.failure("recordings sweep failed", f))
        return d
