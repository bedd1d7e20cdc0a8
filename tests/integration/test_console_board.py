"""The console's board on a replayed busy burst: staffing advice from real Asterisk traffic.

tests/fixtures/ami/load_2cps_queue_events.raw holds the queue events (QueueCallerJoin,
AgentCalled, QueueCallerLeave, AgentConnect, AgentComplete; blocks unchanged) of
../shared/asterisk/transcripts3/load_2cps_ami: 120 calls at 2 calls/s into inbound on a lab
Asterisk 22.10.1 with 60 auto-answering agents, each call held about 49 s. The events go
through the queue feed's consumers as in the engine (statistics, then the console's floor
figures), on a clock that follows their Timestamps.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.task import Clock

import ami_replay
from engine_context import engine_context, records_for
from ccengine.agents import feature as agents
from ccengine.complaints import feature as complaints
from ccengine.console import erlang
from ccengine.console.actions import AuditLog
from ccengine.console.board import Board
from ccengine.console.window import QueueWindows
from ccengine.queues.picture import QueuePicture
from ccengine.stats import feature as stats
from ccengine.waiting import feature as waiting

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ami" / "load_2cps_queue_events.raw"


def burst():
    _, blocks = ami_replay.split_raw(FIXTURE.read_bytes())
    return [ami_replay.Message.parse(b) for b in blocks if b.strip()]


@pytest_twisted.ensureDeferred
async def test_staffing_advice_for_the_replayed_burst(redis_url):
    events = burst()
    assert sum(1 for m in events if m["Event"] == "QueueCallerJoin") == 120
    clock = Clock()
    clock.advance(float(events[0]["Timestamp"]))
    _, ctx = engine_context(redis_url, now=clock.seconds(), clock=clock)
    queue_stats = stats.build(ctx)
    windows = QueueWindows(ctx.config.queues, ctx.config.company.timezone, clock)
    queue_stats.stats.consumer.observers.append(windows)
    picture = QueuePicture(clock)
    for message in events:
        clock.advance(max(0.0, float(message["Timestamp"]) - clock.seconds()))
        picture.apply(message)
        queue_stats.stats.consumer.handle(message)

    # What the capture says, computed here from its own fields.
    talk = [float(m["TalkTime"]) for m in events if m["Event"] == "AgentComplete"]
    mean_talk = sum(talk) / len(talk)
    recent = windows.recent("inbound")
    assert (recent.offered, recent.answered, recent.talked) == (120, 120, 120)
    assert recent.handle_time == pytest.approx(mean_talk)

    staff = agents.build(ctx)
    handled = complaints.build(ctx, records=records_for(ctx), directory=staff.directory)
    board = Board(ctx.config, clock, picture, windows, staff.directory, staff.states,
                  records_for(ctx), waiting.build(ctx).callbacks, handled.complaints.store,
                  AuditLog(ctx.redis, 10))
    snapshot = await board.snapshot()
    inbound = next(q for q in snapshot.queues if q.name == "inbound")
    wrapup = ctx.config.agents.wrapup_seconds
    expected = erlang.agents_needed(120 / 1800, mean_talk + wrapup, 15, 0.8)
    assert inbound.advice == expected
    # 120 calls in the last 30 minutes, each holding an agent for its talk plus wrap-up.
    assert inbound.advice.traffic == pytest.approx(120 / 1800 * (mean_talk + wrapup))
    assert inbound.advice.service_level >= 0.8
    assert erlang.service_level(inbound.advice.agents - 1, inbound.advice.traffic,
                                mean_talk + wrapup, 15) < 0.8
    print(f"\nburst: mean talk {mean_talk:.1f} s, {inbound.advice.traffic:.2f} erlangs, "
          f"{inbound.advice.agents} agents needed for 80 % in 15 s")
    joined = {m["Uniqueid"]: float(m["Timestamp"]) for m in events
              if m["Event"] == "QueueCallerJoin"}
    waits = [float(m["Timestamp"]) - joined[m["Uniqueid"]] for m in events
             if m["Event"] == "AgentConnect"]
    assert inbound.today.asa == pytest.approx(sum(waits) / len(waits))
    assert inbound.today.service_level == sum(1 for w in waits if w <= 15) / len(waits)
    assert inbound.waiting == ()


@pytest_twisted.ensureDeferred
async def test_a_shared_engines_console_reads_the_day_another_engine_counted(redis_url):
    """ami.shared: the engine that counts a server's events writes today's figures to Redis;
    another engine's console reads them again every SHARED_RELOAD seconds (console/feature.py)
    and tells its page, so either engine's page shows the centre's day."""
    from ccengine.console.feature import SHARED_RELOAD, _LoadToday
    from ccengine.runtime.pending import PendingWrites

    clock = Clock()
    clock.advance(1_796_200_000)
    _, ctx = engine_context(redis_url, now=clock.seconds(), clock=clock)
    config = ctx.config
    writes = PendingWrites(clock, drain_timeout=5)
    owner = QueueWindows(config.queues, config.company.timezone, clock, ctx.redis, writes)
    other = QueueWindows(config.queues, config.company.timezone, clock, ctx.redis)
    told = []
    other.listeners.append(told.append)
    reload = _LoadToday(other, clock, SHARED_RELOAD)
    reload.startService()
    owner.offered("inbound", clock.seconds())
    owner.answered("inbound", 4.0, clock.seconds())
    await writes.wait()
    await reload._load()                              # what the next tick does
    assert (other.today("inbound").offered, other.today("inbound").answered) == (1, 1)
    assert told
    reload.stopService()


@pytest_twisted.ensureDeferred
async def test_the_days_figures_in_redis_are_counts_float_sums_and_a_day_ttl(redis_url):
    """Every outcome adds to today's hash of its queue (counts as integers, `_sum` fields as
    floats) and a completed call to the handled-calls hash per member, each kept for DAY_TTL, as the pipelined
    HINCRBY/HINCRBYFLOAT/EXPIRE did before they became one script."""
    import redis as redis_sync

    from ccengine.console.window import DAY_TTL
    from ccengine.runtime.pending import PendingWrites
    from ccengine.store import keys

    clock = Clock()
    clock.advance(1_796_200_000)
    _, ctx = engine_context(redis_url, now=clock.seconds(), clock=clock)
    writes = PendingWrites(clock, drain_timeout=5)
    windows = QueueWindows(ctx.config.queues, ctx.config.company.timezone, clock, ctx.redis,
                           writes)
    windows.offered("inbound", clock.seconds())
    windows.answered("inbound", 2.5, clock.seconds())
    windows.answered("inbound", 0.25, clock.seconds())
    windows.completed("inbound", "1023", 30.5, clock.seconds())
    windows.completed("inbound", "1023", 10.0, clock.seconds())
    await writes.wait()
    sync = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    key = keys.console_day(windows.day(clock.seconds()), "inbound")
    stored = sync.hgetall(key)
    assert stored["offered"] == "1" and stored["answered"] == "2"
    assert float(stored["wait_sum"]) == 2.75 and stored["within_sl"] == "2"
    assert float(stored["talk_sum"]) == 40.5 and stored["talked"] == "2"
    assert 0 < sync.ttl(key) <= DAY_TTL
    handled = keys.console_handled(windows.day(clock.seconds()))
    assert sync.hgetall(handled) == {"1023": "2"}
    assert 0 < sync.ttl(handled) <= DAY_TTL
    sync.close()
