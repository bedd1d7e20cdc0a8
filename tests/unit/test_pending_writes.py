"""PendingWrites (runtime/pending.py): writes nobody waits for, kept until they finish; shutdown
waits for them, and gives up on them after its deadline with each record in the log.

Pure unit tests on a task.Clock; the end-to-end case with a real, stalled Redis is
tests/reliability/test_rel_redis_stall.py (case 9)."""
from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from ccengine.calls.hotline import HotlineRoute
from ccengine.store.base import StoreUnavailable
from ccengine.runtime.pending import PendingWrites


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


class Records:
    """A call record store whose saves the test answers."""

    def __init__(self) -> None:
        self.saves: list[tuple[str, dict, Deferred]] = []

    def create(self, call_id: str, started: float, fields: dict) -> Deferred:
        saving: Deferred = Deferred()
        self.saves.append((call_id, dict(fields), saving))
        return saving


def route_with(records: Records, writes: PendingWrites) -> HotlineRoute:
    # _save uses only the record store and the pending writes.
    return HotlineRoute(None, None, records, None, None, writes.clock, writes)


def test_wait_fires_when_the_last_pending_write_finishes_either_way():
    writes = PendingWrites(Clock())
    assert writes.wait().called                   # nothing pending
    first, second = Deferred(), Deferred()
    writes.add(first)
    writes.add(second.addErrback(lambda failure: None))
    waiting = writes.wait()
    first.callback("stored")
    assert not waiting.called and len(writes) == 1
    second.errback(StoreUnavailable("redis timeout"))
    assert waiting.called and len(writes) == 0


def test_a_write_that_already_finished_is_not_kept():
    writes = PendingWrites(Clock())
    done: Deferred = Deferred()
    done.callback(None)
    writes.add(done)
    assert len(writes) == 0 and writes.wait().called


def test_stopping_with_nothing_pending_does_not_wait():
    writes = PendingWrites(Clock())
    writes.startService()
    assert writes.stopService() is None


def test_stopping_waits_for_pending_writes_and_keeps_their_results():
    clock = Clock()
    writes = PendingWrites(clock, drain_timeout=5.0)
    writes.startService()
    write: Deferred = Deferred()
    results: list = []
    writes.add(write)
    write.addCallback(results.append)
    stopping = writes.stopService()
    clock.advance(4.9)
    assert not stopping.called
    write.callback(1)
    assert stopping.called and results == [1]
    assert not clock.getDelayedCalls()            # the give-up timer is gone


def test_a_record_still_unwritten_at_the_shutdown_deadline_is_cancelled_and_logged(logged):
    """The route's records reach the log when Redis never answers before shutdown ends."""
    clock = Clock()
    writes = PendingWrites(clock, drain_timeout=5.0)
    writes.startService()
    records = Records()
    route = route_with(records, writes)
    route._save("call-7", 1000.0, {"caller": "13800000007", "queue": "inbound"})
    assert len(writes) == 1
    stopping = writes.stopService()
    clock.advance(5.0)
    assert stopping.called and len(writes) == 0
    lost = [e for e in logged if "record" in e and e["record"].get("caller") == "13800000007"]
    assert len(lost) == 1 and lost[0]["log_level"].name == "error"


def failed_save(error: Exception, logged: list[dict]) -> dict:
    """Save a record whose write fails with `error`; the one log event that carries it."""
    writes = PendingWrites(Clock())
    records = Records()
    route_with(records, writes)._save("call-8", 1000.0, {"caller": "13800000008"})
    records.saves[0][2].errback(error)
    assert len(writes) == 0
    (event,) = [e for e in logged if "record" in e]
    assert event["record"]["caller"] == "13800000008"
    return event


def test_a_failed_record_write_is_logged_with_the_record(logged):
    event = failed_save(StoreUnavailable("redis timeout"), logged)
    assert "redis timeout" in event["exc"] and "log_failure" not in event


def test_an_unexpected_error_is_logged_with_its_traceback_and_the_record(logged):
    event = failed_save(ValueError("bad reply"), logged)
    assert event["log_failure"].check(ValueError)
