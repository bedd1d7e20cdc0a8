"""The engine against the captures of its own issue-24 dialplans on a real Asterisk 22.10.1
(tests/fixtures/asterisk_lab24/README.md: each run's AMI stream, Asterisk's messages.log with
every AGI line): the place Asterisk computed, the waits the statistics
derive from Asterisk's event times, and the queue-announce arguments the dialplan really sends."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import pytest_twisted

import ami_replay
from agi_harness import ScriptedAsterisk
from ccengine.ami.wire import Message
from ccengine.config import QueueConfig
from ccengine.stats import QueueStats
from ccengine.waiting import priority
from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock
from queue_feed_helpers import queue_labels

LAB = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk_lab24"
QUEUES = {n: QueueConfig(n) for n in ("inbound", "complaint", "outbound", "supervisor")}


def messages(capture: str) -> list[Message]:
    _, blocks = ami_replay.split_raw((LAB / f"{capture}.ami_stream.raw").read_bytes())
    return [Message.parse(block) for block in blocks]


def events(capture: str, name: str | None = None, **headers: str) -> list[Message]:
    return [m for m in messages(capture) if m.event is not None
            and (name is None or m.event == name)
            and all(m.get(k) == v for k, v in headers.items())]


def ts(message: Message) -> float:
    return float(message.get("Timestamp"))


def stats_after(capture: str, before_hangup=None):
    """Every event of the capture through the statistics consumer; `before_hangup(uniqueid)`
    runs just before each Hangup event (where the engine would report a callback)."""
    registry = CollectorRegistry()
    clock = Clock()
    stats = QueueStats.build(registry, QUEUES, clock)
    for message in events(capture):
        if message.get("Timestamp"):
            clock.advance(max(0.0, ts(message) - clock.seconds()))
        if message.event == "Hangup" and before_hangup is not None:
            before_hangup(stats.consumer, message.get("Uniqueid"))
        stats.consumer.handle(message)
    return lambda name, **labels: registry.get_sample_value(name, queue_labels(name, labels))


def test_routed_call_answer_time_is_asterisks_time_from_the_first_entry():
    """lab24_routed_call_agent_free: the answer time the engine records is AgentConnect's
    Timestamp minus QueueCallerJoin's, and it is inside the service level."""
    join, = events("routed_call_agent_free", "QueueCallerJoin")
    connect, = events("routed_call_agent_free", "AgentConnect")
    value = stats_after("routed_call_agent_free")
    q = {"queue": "inbound"}
    assert value("ccengine_queue_answer_time_seconds_sum", **q) == \
        pytest.approx(ts(connect) - ts(join), abs=1e-6)
    assert value("ccengine_queue_answered_within_sl_total", **q) == 1.0


def test_the_dialplan_place_is_the_engines_formula_on_asterisks_clock():
    """Every QUEUE_PRIO the dialplan set (VarSet, base 0 here) is priority.place() of that
    caller's first QueueCallerJoin Timestamp, to within the few hundredths of a second between
    [ccengine-first-entry] and the join."""
    for capture in ("routed_call_agent_free", "callback_after_30s", "engine_down_key2_fallback"):
        first_join: dict[str, float] = {}
        for join in events(capture, "QueueCallerJoin"):
            first_join.setdefault(join.get("Uniqueid"), ts(join))
        prios = {m.get("Uniqueid"): int(m.get("Value"))
                 for m in events(capture, "VarSet", Variable="QUEUE_PRIO")}
        assert prios.keys() == first_join.keys()
        for uniqueid, prio in prios.items():
            assert 0 <= priority.place(first_join[uniqueid]) - prio <= 5, (capture, uniqueid)


def test_engine_down_key_press_keeps_the_place_and_one_offer():
    """lab24_engine_down_key2_fallback: A's second entry is at Position 1 again, ahead of B,
    with the same QUEUE_PRIO; the statistics count A once (the re-entry continues the stay)."""
    joins = events("engine_down_key2_fallback", "QueueCallerJoin")
    a, b = joins[0].get("Uniqueid"), joins[1].get("Uniqueid")
    assert [(j.get("Uniqueid"), j.get("Position")) for j in joins] == [(a, "1"), (b, "2"), (a, "1")]
    set_prio = [m.get("Uniqueid") for m in events("engine_down_key2_fallback", "VarSet",
                                                     Variable="QUEUE_PRIO")]
    assert set_prio.count(a) == 2
    prio_values = {m.get("Value") for m in events("engine_down_key2_fallback", "VarSet",
                                                   Variable="QUEUE_PRIO", Uniqueid=a)}
    assert len(prio_values) == 1
    value = stats_after("engine_down_key2_fallback")
    assert value("ccengine_queue_offered_total", queue="inbound") == 2.0


def test_callback_caller_is_not_an_abandon_and_the_other_caller_is():
    """lab24_callback_after_30s: A took the callback (the engine reports it before A's Hangup)
    and exits `callback`; B hung up while queued: one abandon, waited from B's first join."""
    joins = events("callback_after_30s", "QueueCallerJoin")
    a, b = joins[0].get("Uniqueid"), joins[1].get("Uniqueid")

    def report(consumer, uniqueid):
        if uniqueid == a:
            consumer.callback_taken(a)
    value = stats_after("callback_after_30s", before_hangup=report)
    q = {"queue": "inbound"}
    assert value("ccengine_queue_exits_total", reason="callback", **q) == 1.0
    assert value("ccengine_queue_abandoned_total", **q) == 1.0
    # Asterisk sends QueueCallerAbandon on each Queue() timeout too (B's first slice, HoldTime
    # 30): B's real abandon is the last one, in the queue, milliseconds before the Hangup.
    b_first = min(ts(j) for j in joins if j.get("Uniqueid") == b)
    b_abandons = events("callback_after_30s", "QueueCallerAbandon", Uniqueid=b)
    assert [m.get("HoldTime") for m in b_abandons][0] == "30"
    assert value("ccengine_queue_abandon_wait_seconds_sum", **q) == \
        pytest.approx(ts(b_abandons[-1]) - b_first, abs=1e-6)


def _announce_args(capture: str) -> list[list[str]]:
    """The agi_arg_N of each queue-announce session in the capture's messages.log."""
    text = (LAB / f"{capture}.messages.log").read_text()
    out = []
    for block in text.split("agi_request: agi://")[1:]:
        if not block.split("\n", 1)[0].split("/", 1)[1].startswith("queue-announce"):
            continue
        out.append(re.findall(r"agi_arg_\d+: (.*)", block.split("AGI Tx >> \n", 1)[0]))
    return out


@pytest_twisted.ensureDeferred
async def test_captured_queue_announce_arguments_file_the_caller_at_asterisks_place(redis_url):
    """The queue-announce arguments Asterisk sent in lab24_callback_after_30s (queue, phase,
    QUEUE_PRIO, CC_WAIT_SINCE), replayed into the engine: the line entry has exactly that
    priority and first entry, and A ranks before B."""
    from test_waiting_announce import Caller, build
    args = _announce_args("callback_after_30s")
    assert [a[:2] for a in args[:2]] == [["inbound", "periodic"], ["inbound", "periodic"]]
    factory, _, conn, ctx, r = build(redis_url)
    ctx.clock.advance(float(args[1][3]) + 30 - ctx.clock.seconds())
    for n, arg in enumerate(args[:2]):
        asterisk = ScriptedAsterisk(factory, Caller(keys={"keep_waiting_or_callback": ["1"]}))
        asterisk.dial("queue-announce", args=tuple(arg), uniqueid=f"lab-{n}")
        await asterisk.finished
        entry = r.hgetall(f"cc:line:entry:inbound:lab-{n}")
        assert (entry["priority"], float(entry["joined"])) == (arg[2], float(arg[3]))
    assert r.zrange("cc:line:inbound", 0, -1) == ["call:lab-0", "call:lab-1"]
    await conn.close()


@pytest.mark.parametrize("capture", ["routed_call_agent_free", "type_ahead_greeting",
                                     "no_input_budget", "engine_down_key2_fallback",
                                     "callback_after_30s"])
def test_every_lab_stream_parses_to_typed_messages(capture):
    """Every block of every lab stream is an Event or Response with no malformed line."""
    parsed = messages(capture)
    assert parsed and all(m.malformed == [] for m in parsed)
    assert all(m.event is not None or m.response is not None for m in parsed)
