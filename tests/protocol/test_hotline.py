"""The hotline route end to end at the protocol level: a scripted Asterisk side (reply formats
from tests/fixtures/agi, copies of ../shared/asterisk/transcripts2) dials in, real Redis underneath.

The route's output is the channel variables the dialplan acts on (docs/architecture.md)."""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import pytest_twisted
import redis

from agi_harness import ScriptedAsterisk, digit_code_reply
from engine_context import engine_context, records_for, records_written
from ccengine.calls import feature as calls_feature
from ccengine.config import load_config, parse_config

MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
MONDAY_11PM = datetime(2026, 11, 23, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def build(redis_url, config=None, now=MONDAY_10AM):
    factory, ctx = engine_context(redis_url, now=now, config=config)
    factory.routes.update(calls_feature.build(ctx, records=records_for(ctx)).routes)
    return factory, ctx.registry, ctx.redis


def press_on_menu(digit):
    """Asterisk's answer when the caller presses `digit` during the menu prompt
    (STREAM FILE interrupted: `200 result=<ascii> endpos=...`, agi1_dtmf)."""
    def answer(command):
        if command.startswith(b"STREAM FILE") and b"menu" in command:
            return digit_code_reply(digit, endpos=8000)
        return None
    return answer


async def call(factory, answer=None, **env):
    asterisk = ScriptedAsterisk(factory, answer)
    asterisk.dial("hotline", **env)
    await asterisk.finished
    return asterisk


def sync_redis(url):
    return redis.Redis.from_url(url, decode_responses=True)


@pytest_twisted.ensureDeferred
async def test_vip_caller_pressing_1_is_routed_with_vip_priority(redis_url):
    """A VIP number gets the VIP priority, its name on the channel, and a call record."""
    r = sync_redis(redis_url)
    r.hset("cc:customer:13800000001", mapping={"name": "李雷", "tier": "vip", "language": "zh"})
    r.sadd("cc:vip", "13800000001")
    factory, registry, conn = build(redis_url)
    asterisk = await call(factory, press_on_menu("1"), callerid="13800000001",
                          uniqueid="cclab-1795364563.0")
    v = asterisk.variables
    assert (v["CC_QUEUE"], v["CC_PRIORITY"], v["CC_CATEGORY"]) == ("inbound", "10", "30")
    assert (v["CC_CUSTOMER_TIER"], v["CC_CUSTOMER_NAME"], v["CC_LANGUAGE"]) == ("vip", "李雷", "zh")
    assert (v["CC_ACTION"], v["CC_ROUTE_OK"]) == ("queue", "1")
    # CC_ROUTE_OK is the last variable set: the dialplan never sees a half-written route.
    last_set = [c for c in asterisk.commands if c.startswith(b"SET VARIABLE")][-1]
    assert last_set.startswith(b"SET VARIABLE CC_ROUTE_OK")
    await records_written(factory)
    record = r.hgetall("cc:call:cclab-1795364563.0")
    assert (record["caller"], record["queue"], record["category"], record["outcome"]) == \
        ("13800000001", "inbound", "30", "queued")
    assert registry.get_sample_value("ccengine_routed_calls_total",
                                     {"queue": "inbound", "kind": "inquiry"}) == 1
    assert asterisk.closed
    r.close()
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_blocked_caller_hears_a_message_and_is_hung_up_and_counted(redis_url):
    """A blocked number hears the polite refusal, is hung up, never queued, and is counted."""
    r = sync_redis(redis_url)
    r.sadd("cc:blocklist", "13900000000")
    factory, registry, conn = build(redis_url)
    asterisk = await call(factory, callerid="13900000000", uniqueid="blocked-1")
    assert any(b"blocked" in c for c in asterisk.commands if c.startswith(b"STREAM FILE"))
    assert b"HANGUP" in asterisk.commands
    assert "CC_QUEUE" not in asterisk.variables
    assert (asterisk.variables["CC_ACTION"], asterisk.variables["CC_ROUTE_OK"]) == ("hangup", "1")
    assert registry.get_sample_value("ccengine_hotline_calls_total", {"outcome": "blocked"}) == 1
    await records_written(factory)
    assert r.hget("cc:call:blocked-1", "outcome") == "blocked"
    r.close()
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_unknown_caller_pressing_3_goes_to_the_complaint_queue(redis_url):
    """An unknown number pressing 3 is a complaint: complaint queue, category 10, priority 0."""
    factory, registry, conn = build(redis_url)
    asterisk = await call(factory, press_on_menu("3"), callerid="13700000000")
    v = asterisk.variables
    assert (v["CC_QUEUE"], v["CC_CATEGORY"], v["CC_PRIORITY"], v["CC_CUSTOMER_TIER"]) == \
        ("complaint", "10", "0", "new")
    assert "CC_CUSTOMER_NAME" not in v
    assert v["CC_ROUTE_OK"] == "1"
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_caller_pressing_nothing_gets_the_default_route_after_the_tries(redis_url):
    """No input: the menu is played menu_tries times, then the default queue and category."""
    factory, registry, conn = build(redis_url)
    asterisk = await call(factory, callerid="13700000001")
    menu_plays = [c for c in asterisk.commands if c.startswith(b"STREAM FILE") and b"menu" in c]
    first_pieces = [c for c in menu_plays if c == menu_plays[0]]
    assert len(first_pieces) == 3
    v = asterisk.variables
    assert (v["CC_QUEUE"], v["CC_CATEGORY"], v["CC_ROUTE_OK"]) == ("inbound", "90", "1")
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_language_key_switches_language_for_the_rest_of_the_call(redis_url):
    """Pressing 9 at the menu switches to English; the route carries CC_LANGUAGE=en."""
    presses = iter(["9", "2"])

    def answer(command):
        if command.startswith(b"STREAM FILE") and b"menu" in command:
            return digit_code_reply(next(presses), endpos=100)
        return None
    factory, registry, conn = build(redis_url)
    asterisk = await call(factory, answer, callerid="13700000002")
    assert b'SET VARIABLE CHANNEL(language) "en"' in asterisk.commands
    assert (asterisk.variables["CC_LANGUAGE"], asterisk.variables["CC_CATEGORY"]) == ("en", "40")
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_outside_hours_the_caller_hears_the_hours_and_is_not_queued(redis_url):
    """At 23:00 the inbound queue is closed: the caller hears the hours and the call ends."""
    factory, registry, conn = build(redis_url, now=MONDAY_11PM)
    asterisk = await call(factory, press_on_menu("1"), callerid="13700000003", uniqueid="late-1")
    assert any(b"closed" in c for c in asterisk.commands if c.startswith(b"STREAM FILE"))
    assert (asterisk.variables["CC_ACTION"], asterisk.variables["CC_ROUTE_OK"]) == ("hangup", "1")
    assert registry.get_sample_value("ccengine_hotline_calls_total", {"outcome": "closed"}) == 1
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_redis_down_still_routes_the_caller(redis_url):
    """With Redis unreachable the caller is treated as new and still reaches a queue."""
    from ccengine.store.embedded import free_port
    factory, registry, conn = build(f"redis://127.0.0.1:{free_port()}/0")
    asterisk = await call(factory, press_on_menu("1"), callerid="13700000004")
    assert (asterisk.variables["CC_QUEUE"], asterisk.variables["CC_ROUTE_OK"]) == ("inbound", "1")
    assert asterisk.variables["CC_CUSTOMER_TIER"] == "new"
    await conn.close()


@pytest.mark.parametrize("name", ['Zhang "San"\n张三', "evil\r\nHANGUP", "x\x0bEXEC Dial", "a\u2028b"])
@pytest_twisted.ensureDeferred
async def test_hostile_customer_names_cannot_add_a_command(redis_url, name):
    """A customer name with quotes, newlines or separators ends up as one escaped value."""
    r = sync_redis(redis_url)
    r.hset("cc:customer:13600000000", mapping={"name": name, "tier": "known"})
    factory, registry, conn = build(redis_url)
    asterisk = await call(factory, press_on_menu("1"), callerid="13600000000",
                          calleridname=name.encode("utf-8"))
    set_name = [c for c in asterisk.commands if c.startswith(b"SET VARIABLE CC_CUSTOMER_NAME")]
    assert len(set_name) == 1 and b"\r" not in set_name[0]
    assert asterisk.written.count(b"\n") == len(asterisk.commands)
    assert b"HANGUP" not in asterisk.commands
    r.close()
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_stalled_lookup_triggers_the_watchdog_default_route(redis_url):
    """A Redis lookup that never answers: after max_silence the watchdog sets the default
    route with CC_ROUTE_OK=1 and closes the session, so the caller reaches the queue."""
    from twisted.internet.defer import Deferred
    factory, registry, conn = build(redis_url)
    hotline = factory.routes["hotline"]
    hotline.customers.lookup = lambda number, count=(): Deferred()  # a stall, not an error
    asterisk = ScriptedAsterisk(factory)
    asterisk.dial("hotline", callerid="13700000005")
    assert not asterisk.closed
    asterisk.advance(factory.settings.max_silence + 0.01)
    await asterisk.finished
    v = asterisk.variables
    assert (v["CC_QUEUE"], v["CC_ACTION"], v["CC_ROUTE_OK"]) == ("inbound", "queue", "1")
    assert registry.get_sample_value("ccengine_agi_watchdog_fired_total", {"script": "hotline"}) == 1
    assert registry.get_sample_value("ccengine_hotline_calls_total", {"outcome": "default_route"}) == 1
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_language_follows_called_number_and_saved_preference(redis_url):
    """The called number picks the language; a caller's switch is remembered for next time."""
    config = parse_config({"company": {"language_by_number": {"4001": "en"}}})
    factory, registry, conn = build(redis_url, config=config)
    first = await call(factory, press_on_menu("1"), callerid="13500000000", dnid="4001")
    assert first.variables["CC_LANGUAGE"] == "en"
    presses = iter(["9", "1"])

    def answer(command):
        if command.startswith(b"STREAM FILE") and b"menu" in command:
            return digit_code_reply(next(presses), endpos=100)
        return None
    await call(factory, answer, callerid="13500000001")          # switches zh -> en
    again = await call(factory, press_on_menu("1"), callerid="13500000001")
    assert again.variables["CC_LANGUAGE"] == "en"
    assert again.variables["CC_CUSTOMER_TIER"] == "new"
    assert b'SET VARIABLE CHANNEL(language) "en"' == \
        [c for c in again.commands if c.startswith(b"SET VARIABLE CHANNEL")][0]
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_language_queue_is_used_while_it_has_an_available_agent(redis_url):
    """An English caller goes to the configured English queue while an agent is available
    there, and to the main queue when none is (a caller never waits for nobody)."""
    config = parse_config({"queues": {"inbound": {"language_queues": {"en": "inbound_en"}},
                                      "inbound_en": {}},
                           "company": {"language_by_number": {"4001": "en"}}})
    available = {"inbound_en": 1}
    factory, registry, conn = build(redis_url, config=config)
    factory.routes["hotline"].availability = lambda queue: available.get(queue, 0)
    english = await call(factory, press_on_menu("1"), callerid="13500000010", dnid="4001")
    chinese = await call(factory, press_on_menu("1"), callerid="13500000011")
    available["inbound_en"] = 0
    nobody = await call(factory, press_on_menu("1"), callerid="13500000012", dnid="4001")
    available["inbound_en"] = None                       # no member data yet (AMI not synced)
    unknown = await call(factory, press_on_menu("1"), callerid="13500000013", dnid="4001")
    assert english.variables["CC_QUEUE"] == "inbound_en"
    assert chinese.variables["CC_QUEUE"] == "inbound"
    assert nobody.variables["CC_QUEUE"] == "inbound"
    assert unknown.variables["CC_QUEUE"] == "inbound"
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_repeat_complainant_goes_to_the_complaint_queue_with_their_ticket(redis_url):
    """A caller with an open complaint is routed to the complaint queue with higher priority
    and the ticket id on the channel, whatever they press; also after Redis lost its script
    cache (SCRIPT FLUSH); a caller without tickets is routed by the menu as usual."""
    from ccengine.complaints import feature as complaints_feature
    config = load_config(None)
    factory, ctx = engine_context(redis_url, now=MONDAY_10AM)
    conn = ctx.redis
    from ccengine.agents.directory import AgentDirectory
    records = records_for(ctx)
    handled = complaints_feature.build(ctx, records=records,
                                       directory=AgentDirectory(ctx.redis))
    factory.routes.update(calls_feature.build(ctx, records=records,
                                              repeat=handled.repeat).routes)
    ticket = await handled.complaints.open(number="13400000000", queue="complaint",
                                                 category="10", agent="1003")
    repeat = await call(factory, press_on_menu("1"), callerid="13400000000")
    v = repeat.variables
    assert (v["CC_QUEUE"], v["CC_TICKET_ID"]) == ("complaint", ticket.id)
    assert int(v["CC_PRIORITY"]) == config.complaints.repeat_priority
    sync = sync_redis(redis_url)
    sync.script_flush()
    again = await call(factory, press_on_menu("2"), callerid="13400000000")
    assert (again.variables["CC_QUEUE"], again.variables["CC_TICKET_ID"]) == ("complaint", ticket.id)
    other = await call(factory, press_on_menu("1"), callerid="13400000001")
    assert other.variables["CC_QUEUE"] == "inbound" and "CC_TICKET_ID" not in other.variables
    sync.close()
    await conn.close()


def timed_caller(clock, seconds, press=None):
    """Asterisk playing prompts in real time on the engine's clock: `seconds[name]` is how long
    the first piece of a prompt plays (the menu's 8.6 s and the greeting's 3.1 s are from
    transcripts3/routed_call_agent_free/TIMELINE.txt); WAIT FOR DIGIT runs to its timeout.
    `press` = (prompt, digit): that prompt is interrupted by the digit at once."""
    def answer(command):
        if command.startswith(b"STREAM FILE"):
            for name, length in seconds.items():
                if f"/ccengine/{name} ".encode() in command or \
                        f"/ccengine/{name}-1 ".encode() in command:
                    if press and press[0] == name:
                        clock.advance(1.0)
                        return digit_code_reply(press[1], endpos=8000)
                    clock.advance(length)
            return None
        if command.startswith(b"WAIT FOR DIGIT"):
            clock.advance(int(command.split()[-1]) / 1000)
            return b"200 result=0\n"
        return None
    return answer


PROMPT_SECONDS = {"welcome": 3.1, "menu": 8.6}


@pytest_twisted.ensureDeferred
async def test_key_pressed_during_the_greeting_is_the_menu_choice(redis_url):
    """Type-ahead: 3 pressed one second into the greeting routes to the complaint queue at
    once; the menu is never played (transcripts3: the greeting had no escape digits, the key
    was dropped and that caller joined the default queue 59 s after answer)."""
    factory, registry, conn = build(redis_url)
    clock = factory.routes["hotline"].clock
    start = clock.seconds()
    asterisk = await call(factory, timed_caller(clock, PROMPT_SECONDS, ("welcome", "3")),
                          callerid="13700000011")
    greeting = [c for c in asterisk.commands if b"/ccengine/welcome" in c][0]
    assert greeting.endswith(b'"0123456789*#"')
    assert not [c for c in asterisk.commands if b"/ccengine/menu" in c]
    v = asterisk.variables
    assert (v["CC_QUEUE"], v["CC_CATEGORY"], v["CC_ROUTE_OK"]) == ("complaint", "10", "1")
    assert clock.seconds() - start == 1.0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_no_input_caller_reaches_the_default_queue_within_the_budget(redis_url):
    """A caller who presses nothing hears the menu only as often as fits the 30 s budget
    (greeting 3.1 s + 2 x (8.6 s + 4 s) = 28.3 s), then gets the default route, counted."""
    factory, registry, conn = build(redis_url)
    clock = factory.routes["hotline"].clock
    start = clock.seconds()
    asterisk = await call(factory, timed_caller(clock, PROMPT_SECONDS), callerid="13700000012")
    assert len([c for c in asterisk.commands if b"/ccengine/menu" in c]) == 2
    assert asterisk.variables["CC_QUEUE"] == "inbound"
    assert 28.0 < clock.seconds() - start <= 30.0
    assert registry.get_sample_value("ccengine_menu_defaulted_total") == 1.0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_a_tighter_budget_cuts_the_retries(redis_url):
    """With no_input_budget = 20 the second menu play (it would end at 28.3 s) is not started."""
    config = parse_config({"ivr": {"no_input_budget": 20}})
    factory, registry, conn = build(redis_url, config=config)
    clock = factory.routes["hotline"].clock
    start = clock.seconds()
    asterisk = await call(factory, timed_caller(clock, PROMPT_SECONDS), callerid="13700000013")
    assert len([c for c in asterisk.commands if b"/ccengine/menu" in c]) == 1
    assert clock.seconds() - start <= 20.0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_recorded_queue_plays_the_notice_and_names_the_recording(redis_url):
    """A queue with record = true: the caller hears the recording notice after the menu and
    before the route is acknowledged; the file name (the call id) is set inherited
    (__CC_RECORD_FILE, for the agent channel's MixMonitor) and stored on the call record."""
    config = parse_config({"queues": {"inbound": {"record": True}}})
    factory, _, conn = build(redis_url, config=config)
    asterisk = await call(factory, press_on_menu("1"), callerid="13800000001",
                          uniqueid="cclab-1795364563.7")
    commands = [c.decode() for c in asterisk.commands]
    notice = next(i for i, c in enumerate(commands) if "recording_notice" in c)
    assert commands[notice].startswith("STREAM FILE")
    assert notice < commands.index('SET VARIABLE __CC_RECORD_FILE "cclab-1795364563.7"') < \
        next(i for i, c in enumerate(commands) if c.startswith("SET VARIABLE CC_ROUTE_OK"))
    await records_written(factory)
    record = sync_redis(redis_url).hgetall("cc:call:cclab-1795364563.7")
    assert record["recording"] == "cclab-1795364563.7.wav"
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_queues_are_not_recorded_by_default(redis_url):
    factory, _, conn = build(redis_url)
    asterisk = await call(factory, press_on_menu("1"), callerid="13800000001",
                          uniqueid="cclab-1795364563.8")
    assert not any(b"recording_notice" in c or b"CC_RECORD_FILE" in c for c in asterisk.commands)
    await records_written(factory)
    assert "recording" not in sync_redis(redis_url).hgetall("cc:call:cclab-1795364563.8")
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_blocklist_file_still_refuses_while_redis_cannot_answer(tmp_path):
    """Redis down (nothing listens on its port): a caller on the blocklist FILE is refused
    anyway (callers.block_from_file_when_redis_down, on by default), counted; another caller
    is routed as new."""
    from ccengine.store.embedded import free_port
    (tmp_path / "block.txt").write_text("13900000003\n", encoding="utf-8")
    config = parse_config({"callers": {"blocklist_file": str(tmp_path / "block.txt")},
                           "redis": {"timeout": 0.3}})
    factory, ctx = engine_context(f"redis://127.0.0.1:{free_port()}/0", now=MONDAY_10AM,
                                  config=config, redis_timeout=0.3)
    feature = calls_feature.build(ctx, records=records_for(ctx))
    factory.routes.update(feature.routes)
    loader = feature.services[0]
    await loader.load()                     # reads the file; Redis refuses the write
    assert not loader.loaded
    blocked = await call(factory, callerid="13900000003", uniqueid="down-1")
    assert blocked.variables["CC_ACTION"] == "hangup"
    assert any(b"blocked" in c for c in blocked.commands)
    assert ctx.registry.get_sample_value("ccengine_blocked_from_file_total") == 1
    other = await call(factory, press_on_menu("1"), callerid="13900000004", uniqueid="down-2")
    assert other.variables["CC_ACTION"] == "queue"
    await ctx.redis.close()


@pytest_twisted.ensureDeferred
async def test_two_sessions_with_one_uniqueid_keep_both_records(redis_url):
    """issue 19 point 9: a second session claiming an existing agi_uniqueid does not
    overwrite the first call's record; it is kept under a suffixed id, marked duplicate_of."""
    factory, _, conn = build(redis_url)
    await call(factory, press_on_menu("1"), callerid="13800000001", uniqueid="same-1")
    await records_written(factory)
    await call(factory, press_on_menu("3"), callerid="13800000002", uniqueid="same-1")
    await records_written(factory)
    r = sync_redis(redis_url)
    assert r.hget("cc:call:same-1", "caller") == "13800000001"
    others = [k for k in r.keys("cc:call:same-1-dup-*")]
    assert len(others) == 1 and r.hget(others[0], "caller") == "13800000002"
    assert r.hget(others[0], "duplicate_of") == "same-1"
    await conn.close()
