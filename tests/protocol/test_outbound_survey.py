"""AGI routes `survey` and `outbound-answer` through the FastAGI server, with a real Redis.

Reply formats from tests/fixtures/agi (transcripts2, Asterisk 22.10.1): a key pressed during
STREAM FILE answers `200 result=<ascii> endpos=...` (agi1_dtmf); defaults of agi_harness."""
from __future__ import annotations

import dataclasses

import pytest_twisted
import redis

from agi_harness import ScriptedAsterisk, digit_code_reply
from engine_context import engine_context, records_for
from ccengine.config import load_config
from ccengine.outbound import feature as outbound_feature
from ccengine.outbound.jobs import JobStore, new_job
from ccengine.calls.records import CallRecordStore

NOW = 1_748_916_000.0


def build(redis_url, survey_queues=("inbound",)):
    config = load_config(None)
    config = dataclasses.replace(config, outbound=dataclasses.replace(
        config.outbound, survey_queues=survey_queues))
    factory, ctx = engine_context(redis_url, now=NOW, config=config)
    factory.routes.update(outbound_feature.build(ctx, records=records_for(ctx)).routes)
    return factory, ctx.registry, ctx.redis


def press_on(prompt: str, *digits: str):
    presses = iter(digits)

    def answer(command):
        if command.startswith(b"STREAM FILE") and prompt.encode() in command:
            digit = next(presses, "")
            return digit_code_reply(digit, endpos=4000) if digit else None
        return None
    return answer


async def call(factory, answer, script="survey", **env):
    asterisk = ScriptedAsterisk(factory, answer)
    asterisk.dial(script, **env)
    await asterisk.finished
    return asterisk


def asked(asterisk) -> int:
    return sum(1 for c in asterisk.commands if b"survey_question" in c)


@pytest_twisted.ensureDeferred
async def test_post_call_survey_stores_the_score_with_the_call_record(redis_url):
    """After the agent hung up, the caller presses 4: the call record gets survey_score 4 and
    the histogram ccengine_survey_score{queue="inbound"} counts it in the le=4 bucket."""
    factory, registry, conn = build(redis_url)
    await CallRecordStore(conn, 1000, 1).save("cclab-1.1", NOW - 300, {"caller": "13800000001"})
    asterisk = await call(factory, press_on("survey_question", "4"), args=("inbound", ""),
                          uniqueid="cclab-1.1")
    assert asked(asterisk) == 1
    record = redis.Redis.from_url(redis_url, decode_responses=True).hgetall("cc:call:cclab-1.1")
    assert record["survey_score"] == "4"
    assert registry.get_sample_value("ccengine_survey_score_bucket",
                                     {"queue": "inbound", "le": "4.0"}) == 1
    assert registry.get_sample_value("ccengine_survey_score_bucket",
                                     {"queue": "inbound", "le": "3.0"}) == 0
    assert registry.get_sample_value("ccengine_survey_score_sum", {"queue": "inbound"}) == 4
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_queue_without_survey_asks_nothing(redis_url):
    """A queue not listed in outbound.survey_queues: no question, nothing stored."""
    factory, registry, conn = build(redis_url, survey_queues=())
    asterisk = await call(factory, press_on("survey_question", "5"), args=("inbound", ""))
    assert asked(asterisk) == 0
    assert registry.get_sample_value("ccengine_survey_score_count", {"queue": "inbound"}) == 0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_keys_outside_1_to_5_are_asked_again_then_dropped(redis_url):
    """9 then 0: asked twice, nothing stored or counted."""
    factory, registry, conn = build(redis_url)
    await CallRecordStore(conn, 1000, 1).save("cclab-1.2", NOW - 300, {"caller": "1380000"})
    asterisk = await call(factory, press_on("survey_question", "9", "0"), args=("inbound", ""),
                          uniqueid="cclab-1.2")
    assert asked(asterisk) == 2
    record = redis.Redis.from_url(redis_url, decode_responses=True).hgetall("cc:call:cclab-1.2")
    assert "survey_score" not in record
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_outbound_survey_job_is_asked_even_for_a_queue_without_post_call_survey(redis_url):
    """An outbound survey campaign call (job id argument) is always asked; hostile job ids are
    ignored."""
    factory, registry, conn = build(redis_url, survey_queues=())
    asterisk = await call(factory, press_on("survey_question", "5"), args=("outbound", "sv-3"),
                          uniqueid="0e3c5c6e-1111-4aaa-8bbb-123456789abc")
    assert asked(asterisk) == 1
    assert registry.get_sample_value("ccengine_survey_score_count", {"queue": "outbound"}) == 1
    hostile = await call(factory, None, args=("inbound", "x\"; HANGUP"))
    assert asked(hostile) == 0
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_outbound_answer_greets_and_keeps_the_callback_priority(redis_url):
    """A called-back customer answers: intro prompt, CC_PRIORITY = the callback's QUEUE_PRIO,
    CC_ROUTE_OK=1 set last."""
    factory, registry, conn = build(redis_url)
    await JobStore(conn).add(new_job("cb-9", "callback", "13800000001", NOW, "Asia/Shanghai",
                                     queue="inbound", priority=4200, language="en"))

    def answer(command):
        if command.startswith(b"GET VARIABLE CCENGINE_JOB"):
            return b"200 result=1 (cb-9)\n"
        return None
    asterisk = await call(factory, answer, script="outbound-answer", args=("inbound",))
    assert any(b"callback_outbound_intro" in c for c in asterisk.commands)
    assert asterisk.variables["CC_PRIORITY"] == "4200"
    assert list(asterisk.variables)[-1] == "CC_ROUTE_OK" and asterisk.variables["CC_ROUTE_OK"] == "1"
    await conn.close()
