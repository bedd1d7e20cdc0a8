"""Issue 8, case 3: callback / outbound numbers that could reach a dial string are rejected
before anything is stored or originated.

`check_callback_number` (ccengine/waiting/numbers.py, docs/waiting.md) is the gate in front of
every callback request; the store refuses anything that is not a phone number as a key part,
so a hostile number can reach neither Redis nor, later, an Originate's Channel.
"""
from __future__ import annotations

import dataclasses

import pytest
import pytest_twisted
import redis

from ccengine.config import WaitingConfig
from ccengine.store.base import RedisConnection
from ccengine.store.keys import BadKeyPart
from ccengine.waiting.callbacks import CallbackStore
from ccengine.waiting.numbers import (INTERNATIONAL, NOT_DIGITS, PREMIUM, TOO_LONG, TOO_SHORT,
                                      NumberRejected, check_callback_number)

DEFAULTS = WaitingConfig()

HOSTILE = {
    "channel-list": ("123&PJSIP/x", NOT_DIGITS),
    "at-trunk": ("1@trunk", NOT_DIGITS),
    "letters": ("13800ABC001", NOT_DIGITS),
    "forty-digits": ("1" * 40, TOO_LONG),
    "premium-900": ("9001234567", PREMIUM),
    "premium-1900": ("19001234567", PREMIUM),
    "premium-0900": ("09001234567", PREMIUM),
    "international-00": ("0044207946000", INTERNATIONAL),
    "international-plus": ("+442079460000", INTERNATIONAL),
    "expression": ("${SHELL(id)}", NOT_DIGITS),
    "comma-options": ("13800000001,,D(1)", NOT_DIGITS),
    "newline": ("13800000001\n", NOT_DIGITS),
    "fullwidth-digits": ("１３８００００００１", NOT_DIGITS),
    "too-short": ("112", TOO_SHORT),
    "empty": ("", NOT_DIGITS),
}


@pytest.mark.parametrize("number,reason", HOSTILE.values(), ids=HOSTILE.keys())
def test_case3_hostile_numbers_are_rejected_with_their_reason(number, reason):
    """Case 3: dial-string syntax, letters, 40 digits, premium and international prefixes are
    rejected by the callback number gate, each with its (bounded) reason."""
    with pytest.raises(NumberRejected) as caught:
        check_callback_number(number, DEFAULTS)
    assert caught.value.reason == reason


def test_case3_allow_list_is_configurable_and_never_admits_dial_syntax():
    """Case 3: an allow-listed prefix admits an international or premium number it names,
    and nothing else: dial-string characters stay rejected whatever the allow-list says."""
    config = dataclasses.replace(DEFAULTS, allowed_prefixes=("0044", "900"))
    assert check_callback_number("0044207946000", config) == "0044207946000"
    assert check_callback_number("9001234567", config) == "9001234567"
    for number in ("0033142000000", "19001234567", "0044&PJSIP/x", "900@trunk", "1" * 40):
        with pytest.raises(NumberRejected):
            check_callback_number(number, config)
    assert check_callback_number("13800000001", DEFAULTS) == "13800000001"


@pytest.mark.parametrize("number", ["123&PJSIP/x", "1@trunk", "138\r\n0", "${EXTEN}"])
@pytest_twisted.ensureDeferred
async def test_case3_callback_store_refuses_a_hostile_number_before_redis(redis_url, number):
    """Case 3: even a caller bypassing the gate cannot store a hostile number: the store
    refuses it as a key part before any Redis command, and Redis stays empty."""
    conn = RedisConnection(redis_url)
    store = CallbackStore(conn, ["inbound"], expire_hours=48)
    with pytest.raises(BadKeyPart):
        store.request(number, "inbound", "zh", "call-1", 0, 1000.0, 1000.0)
    r = redis.Redis.from_url(redis_url)
    assert r.dbsize() == 0
    r.close()
    await conn.close()


@pytest.mark.parametrize("part", ["13800000001\n", "+8613800000001\n"])
def test_case3_key_parts_with_a_trailing_newline_are_refused(part):
    """Case 3: a number or id ending in a newline is not a valid key part (Python's `$`
    matches before a final newline, so the pattern alone does not refuse it)."""
    from ccengine.store import keys
    with pytest.raises(BadKeyPart):
        keys.number_part(part)
    with pytest.raises(BadKeyPart):
        keys.id_part(part.lstrip("+"))


@pytest.mark.parametrize("number", ["123&PJSIP/x", "1@trunk", "1380000000A", "1" * 40])
def test_case3_outbound_jobs_refuse_hostile_numbers_before_any_originate(number):
    """Case 3: the outbound dialler's job constructor refuses a number that is not a phone
    number (or longer than 32 digits), so no Originate can ever carry it."""
    from ccengine.outbound.jobs import new_job
    with pytest.raises(ValueError):
        new_job("job-1", "callback", number, 1000.0, "Asia/Shanghai")
