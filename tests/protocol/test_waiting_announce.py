"""The queue-announce route end to end at the protocol level: a scripted Asterisk (reply formats
of tests/fixtures/agi, copies of ../shared/asterisk/transcripts2: STREAM FILE interrupted by a
digit = `200 result=<ascii> endpos=...` (agi1_dtmf), WAIT FOR DIGIT, hang-up during a prompt =
`200 result=-1 endpos=...` then `HANGUP` (agi2_hangup_stream), GET VARIABLE of a set variable
= `200 result=1 (value)` (agi1_suite)), a scripted caller pressing keys, real Redis underneath.
Each test checks the channel variables the dialplan acts on and the Redis state afterwards."""
from __future__ import annotations

import re

import pytest_twisted
import redis
from twisted.internet.defer import fail

from agi_harness import ScriptedAsterisk, digit_code_reply, split_args
from engine_context import engine_context, records_for
from ccengine.ami.wire import Message
from ccengine.config import load_config
from ccengine.store.base import StoreUnavailable
from ccengine.store.embedded import free_port
from ccengine.waiting import feature as waiting_feature
from ccengine.waiting import priority

UNIQUEID = "cclab-1795366328.16"
CALLER = "13800000001"


class Caller:
    """Asterisk plus the person on the phone: `keys[prompt]` is a list, one entry per time the
    prompt is played; each entry's first key interrupts the prompt's first piece, the rest
    answer the following WAIT FOR DIGITs (then the entry timeout, `200 result=0`).
    An entry starting with '+' lets the prompt play to its end and presses its keys after."""

    def __init__(self, keys=None, hang_up_on=None, variables=None):
        self.keys = {name: list(v) for name, v in (keys or {}).items()}
        self.hang_up_on = hang_up_on
        self.variables = {"CC_LANGUAGE": "en", "CC_PRIORITY": "0", **(variables or {})}
        self.played: list[str] = []           # prompt names, in order (first piece only)
        self.pending = ""
        self.gone = False

    def __call__(self, command: bytes):
        args = split_args(command)
        if command.startswith(b"GET VARIABLE"):
            value = self.variables.get(args[2])
            return b"200 result=0\n" if value is None else f"200 result=1 ({value})\n".encode()
        if command.startswith(b"STREAM FILE"):
            if self.gone:
                return b"511 Command Not Permitted on a dead channel or intercept routine\n"
            _, _, stem = args[2].partition("/ccengine/")
            # A prompt's first piece is `<name>` or `<name>-1`; later pieces, numbers and
            # digits (`num/3`, `digit/1`, `<name>-2`) are not counted as a new prompt.
            if stem and "/" not in stem and not re.search(r"-([2-9]|\d\d)$", stem):
                name = re.sub(r"-1$", "", stem)
                self.played.append(name)
                if name == self.hang_up_on:
                    self.gone = True
                    return b"200 result=-1 endpos=20160\nHANGUP\n"
                if self.keys.get(name):
                    entry = self.keys[name].pop(0)
                    if entry.startswith("+"):      # listen to the end, then press
                        self.pending = entry[1:]
                        return None
                    self.pending = entry[1:]
                    return digit_code_reply(entry[0], endpos=1200)
            return None
        if command.startswith(b"WAIT FOR DIGIT"):
            if self.pending:
                digit, self.pending = self.pending[0], self.pending[1:]
                return digit_code_reply(digit)
            return b"200 result=0\n"
        return None


def build(redis_url, config=None, staffing=None, talk_times=()):
    config = config or load_config(None)
    factory, ctx = engine_context(redis_url, now=1_800_000_000, config=config, redis_timeout=0.5)
    registry, conn = ctx.registry, ctx.redis
    feature = waiting_feature.build(ctx)
    factory.routes.update(feature.routes)
    route = feature.routes["queue-announce"]
    if staffing is not None:
        # QueueStatus QueueMember entries as in ami9_pause_rna_incall (Status 1, Paused 0).
        route.p.picture.replace([Message({"Event": "QueueMember", "Queue": "inbound",
                                           "Location": f"PJSIP/100{i}", "Status": "1",
                                           "Paused": "0"}) for i in range(staffing)])
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    for t in talk_times:
        r.lpush("cc:aht:inbound", t)
    return factory, registry, conn, ctx, r


# What [ccengine-wait] passes: the QUEUE_PRIO the caller queues with (base 0, first entry 40 s
# before the engine clock's now) and that first entry's epoch (CC_WAIT_SINCE).
FIRST_ENTRY = 1_800_000_000 - 40
QUEUED_PRIO = priority.queue_priority(0, FIRST_ENTRY)


async def call(factory, caller, phase="periodic", uniqueid=UNIQUEID, callerid=CALLER,
               prio=QUEUED_PRIO, since=FIRST_ENTRY):
    asterisk = ScriptedAsterisk(factory, caller)
    asterisk.dial("queue-announce", args=("inbound", phase, str(prio), str(since)),
                  uniqueid=uniqueid, callerid=callerid)
    await asterisk.finished
    return asterisk


def last_set(asterisk) -> bytes:
    return [c for c in asterisk.commands if c.startswith(b"SET VARIABLE")][-1]


@pytest_twisted.ensureDeferred
async def test_pressing_1_keeps_waiting_with_a_place_keeping_priority(redis_url):
    """Position and estimate are spoken, 1 sends the caller back; the engine leaves the priority
    to the dialplan (no CC_PRIORITY set) and files the caller in its line under the QUEUE_PRIO
    and first entry the dialplan passed; no callback is written."""
    factory, registry, conn, _, r = build(redis_url, staffing=2, talk_times=(120, 240))
    caller = Caller(keys={"keep_waiting_or_callback": ["1"]})
    asterisk = await call(factory, caller)
    v = asterisk.variables
    assert (v["CC_ANNOUNCE_ACTION"], v["CC_ROUTE_OK"], v["CC_ANNOUNCE_EVERY"]) == ("stay", "1", "30")
    assert "CC_PRIORITY" not in v
    entry = r.hgetall(f"cc:line:entry:inbound:{UNIQUEID}")
    assert (int(entry["priority"]), float(entry["joined"])) == (QUEUED_PRIO, FIRST_ENTRY)
    assert caller.played == ["position_announce", "keep_waiting_or_callback"]
    # position 1 * 180 s mean / 2 agents = 90 s -> "about 2 minutes"
    assert b"en/ccengine/num/2" in b"\n".join(asterisk.commands)
    assert last_set(asterisk).startswith(b"SET VARIABLE CC_ROUTE_OK")
    assert r.zrange("cc:line:inbound", 0, -1) == [f"call:{UNIQUEID}"]
    assert r.keys("cc:callback:*") == []
    assert registry.get_sample_value("ccengine_wait_announcements_total",
                                     {"queue": "inbound", "choice": "stay"}) == 1.0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_pressing_2_with_caller_id_confirmed_stores_the_callback(redis_url):
    """2, then 1 to confirm the caller ID: the callback is stored in the caller's place, the
    caller leaves the line and the dialplan is told `callback`."""
    factory, registry, conn, _, r = build(redis_url)
    caller = Caller(keys={"keep_waiting_or_callback": ["2"], "callback_confirm_number": ["1"]})
    asterisk = await call(factory, caller)
    assert asterisk.variables["CC_ANNOUNCE_ACTION"] == "callback"
    assert asterisk.variables["CC_ROUTE_OK"] == "1"
    assert caller.played == ["position_only", "no_estimate", "keep_waiting_or_callback",
                             "callback_confirm_number", "callback_stored_no_estimate"]
    callback_id = r.get(f"cc:callback:open:{CALLER}")
    stored = r.hgetall(f"cc:callback:{callback_id}")
    assert (stored["number"], stored["queue"], stored["state"]) == (CALLER, "inbound", "pending")
    # The callback keeps the place of the caller's first entry (Asterisk's order).
    assert (int(stored["priority"]), float(stored["joined"])) == (QUEUED_PRIO, FIRST_ENTRY)
    assert r.zrange("cc:line:inbound", 0, -1) == [f"cb:{callback_id}"]
    assert r.zrange("cc:callbacks:ready:inbound", 0, -1) == [callback_id]
    assert registry.get_sample_value("ccengine_callbacks_requested_total",
                                     {"queue": "inbound"}) == 1.0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_pressing_2_with_an_entered_number_reads_it_back(redis_url):
    """Without a usable caller ID the caller enters a number, hears it read back digit by
    digit, confirms with 1, and that number is stored."""
    factory, _, conn, _, r = build(redis_url)
    caller = Caller(keys={"keep_waiting_or_callback": ["2"],
                          "callback_enter_number": ["02088889999#"],
                          "callback_confirm_number": ["+1"]})
    asterisk = await call(factory, caller, callerid="anonymous")
    assert asterisk.variables["CC_ANNOUNCE_ACTION"] == "callback"
    assert "callback_enter_number" in caller.played
    digits = [c for c in asterisk.commands if b"/ccengine/digit/" in c]
    assert [split_args(c)[2][-1] for c in digits] == list("02088889999")
    assert r.get("cc:callback:open:02088889999") is not None
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_bad_entered_number_is_refused_aloud_and_nothing_is_stored(redis_url):
    """A premium-rate number gets callback_invalid_number, the caller stays queued, and no
    callback key exists afterwards."""
    factory, registry, conn, _, r = build(redis_url)
    caller = Caller(keys={"keep_waiting_or_callback": ["2"],
                          "callback_enter_number": ["9001234567#"]})
    asterisk = await call(factory, caller, callerid="")
    assert asterisk.variables["CC_ANNOUNCE_ACTION"] == "stay"
    assert caller.played[-1] == "callback_invalid_number"
    assert r.keys("cc:callback*") == [] and r.keys("cc:callbacks*") == []
    assert r.zrange("cc:line:inbound", 0, -1) == [f"call:{UNIQUEID}"]
    assert registry.get_sample_value("ccengine_callbacks_rejected_total",
                                     {"reason": "premium"}) == 1.0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_hanging_up_during_the_offer_stores_nothing(redis_url):
    """A hang-up while the number is read back ends the session with no callback written and
    no route acknowledgement (the channel is gone anyway)."""
    factory, registry, conn, _, r = build(redis_url)
    caller = Caller(keys={"keep_waiting_or_callback": ["2"]},
                    hang_up_on="callback_confirm_number")
    asterisk = await call(factory, caller)
    assert asterisk.closed
    assert "CC_ANNOUNCE_ACTION" not in asterisk.variables
    assert r.keys("cc:callback*") == [] and r.keys("cc:callbacks*") == []
    assert registry.get_sample_value("ccengine_agi_sessions_total",
                                     {"script": "queue-announce", "outcome": "hangup"}) == 1.0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_key_phase_goes_straight_to_the_callback_dialog(redis_url):
    """Phase `key` (2 pressed in the queue, exit context of capture ami7) skips the
    announcement and asks for the number at once."""
    factory, _, conn, _, r = build(redis_url)
    caller = Caller(keys={"callback_confirm_number": ["1"]})
    asterisk = await call(factory, caller, phase="key")
    assert caller.played[0] == "callback_confirm_number"
    assert asterisk.variables["CC_ANNOUNCE_ACTION"] == "callback"
    assert r.get(f"cc:callback:open:{CALLER}") is not None
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_redis_unreachable_sends_the_caller_straight_back_into_the_queue(redis_url):
    """With Redis unreachable the caller goes back to the queue at once, with no prompt first
    (CC_ANNOUNCE_ACTION=stay, CC_ROUTE_OK=1; issue 24 point 7: the apology before re-entry kept
    callers out of the queue for seconds), and the round is counted."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    factory, registry, conn, _, r = build(dead)
    caller = Caller()
    asterisk = await call(factory, caller)
    assert caller.played == []
    assert (asterisk.variables["CC_ANNOUNCE_ACTION"], asterisk.variables["CC_ROUTE_OK"]) == \
        ("stay", "1")
    assert registry.get_sample_value("ccengine_wait_announcements_total",
                                     {"queue": "inbound", "choice": "unavailable"}) == 1.0
    r.close()
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_redis_failing_at_the_store_step_withdraws_the_offer(redis_url):
    """Redis answering the announcement but failing when the confirmed callback is stored:
    callback_unavailable is spoken, nothing is stored, the caller stays queued."""
    factory, _, conn, ctx, r = build(redis_url)
    store = factory.routes["queue-announce"].p.dialog.callbacks
    store.request = lambda *args, **kwargs: fail(StoreUnavailable("redis: TimeoutError: "))
    caller = Caller(keys={"keep_waiting_or_callback": ["2"], "callback_confirm_number": ["1"]})
    asterisk = await call(factory, caller)
    assert caller.played[-1] == "callback_unavailable"
    assert asterisk.variables["CC_ANNOUNCE_ACTION"] == "stay"
    assert r.keys("cc:callback*") == []
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_closed_hours_callback_offer_through_the_hotline(redis_url):
    """Outside hours the hotline (calls feature, given the waiting feature's closed-hours offer)
    offers the callback: 1 then 1 to confirm stores a pending callback for inbound."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from ccengine.calls import feature as calls_feature
    from ccengine.waiting.announce import ClosedHoursOffer
    factory, _, conn, ctx, r = build(redis_url)
    monday_11pm = datetime(2026, 11, 23, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    ctx.clock.advance(monday_11pm - ctx.clock.seconds())
    offer = ClosedHoursOffer(factory.routes["queue-announce"].p)
    factory.routes.update(calls_feature.build(ctx, records=records_for(ctx),
                                              closed_offer=offer).routes)
    caller = Caller(keys={"menu": ["1"], "closed_callback_offer": ["1"],
                          "callback_confirm_number": ["1"]})
    asterisk = ScriptedAsterisk(factory, caller)
    asterisk.dial("hotline", callerid=CALLER, uniqueid="late-1")
    await asterisk.finished
    assert "closed_callback_offer" in caller.played and caller.played[-1] == "goodbye"
    callback_id = r.get(f"cc:callback:open:{CALLER}")
    stored = r.hgetall(f"cc:callback:{callback_id}")
    assert (stored["queue"], stored["state"], stored["call_id"]) == ("inbound", "pending", "late-1")
    assert r.zrange("cc:callbacks:ready:inbound", 0, -1) == [callback_id]
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_garbage_place_arguments_fall_back_to_a_place_now(redis_url):
    """A QUEUE_PRIO over the C int range and a first entry in the future are refused: the line
    gets the place the dialplan would compute for an entry now, from CC_PRIORITY's base."""
    factory, _, conn, ctx, r = build(redis_url)
    caller = Caller(keys={"keep_waiting_or_callback": ["1"]}, variables={"CC_PRIORITY": "10"})
    await call(factory, caller, prio=str(2**31), since=str(1_800_000_000 + 3600))
    entry = r.hgetall(f"cc:line:entry:inbound:{UNIQUEID}")
    now = ctx.clock.seconds()
    assert (int(entry["priority"]), float(entry["joined"])) == \
        (priority.queue_priority(10, now), now)
    await conn.close()
