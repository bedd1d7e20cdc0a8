"""Pure dialler decisions: Reason codes to outcomes, the retry schedule, ChannelIds, the
Originate fields (outbound/dialler.py)."""
from __future__ import annotations

import pytest

from ccengine.ami.wire import Action
from ccengine.config import OutboundConfig
from ccengine.outbound.dialler import (CHANNEL_ID_RE, Dialler, new_channel_id, next_step,
                                       outcome_of)
from ccengine.outbound.jobs import new_job

CONFIG = OutboundConfig(max_attempts=4, retry_minutes=(10, 30, 120))


@pytest.mark.parametrize("reason, outcome", [
    ("4", "answered"),      # ami5 #1
    ("0", "failed"),        # ami5 #2, #4
    ("3", "no_answer"),     # ami5 #5, #6
    ("5", "busy"),          # AST_CONTROL_BUSY (include/asterisk/frame.h)
    ("8", "failed"),        # AST_CONTROL_CONGESTION
    ("1", "no_answer"),     # AST_CONTROL_HANGUP before answer
    ("99", "failed"), ("", "failed"), (None, "failed")])
def test_reason_codes_map_to_outcomes(reason, outcome):
    """OriginateResponse Reason values become the documented outcomes; unknown ones fail."""
    assert outcome_of(reason) == outcome


def test_retry_schedule_backs_off_then_gives_up():
    """Attempt 1, 2, 3 wait 10, 30, 120 minutes; the 4th failure (max_attempts) is final."""
    assert next_step("busy", 1, 1000.0, CONFIG) == ("", 1000.0 + 600)
    assert next_step("no_answer", 2, 1000.0, CONFIG) == ("", 1000.0 + 1800)
    assert next_step("failed", 3, 1000.0, CONFIG) == ("", 1000.0 + 7200)
    assert next_step("busy", 4, 1000.0, CONFIG) == ("failed", 0.0)


def test_last_retry_wait_repeats_when_attempts_exceed_the_list():
    """With more attempts than waits the last wait is reused."""
    config = OutboundConfig(max_attempts=6, retry_minutes=(5,))
    assert next_step("busy", 4, 0.0, config) == ("", 300.0)


def test_final_outcomes_never_retry():
    """Answered is done; an invalid number and the do-not-call list end the job at once."""
    assert next_step("answered", 1, 0.0, CONFIG) == ("done", 0.0)
    assert next_step("invalid_number", 1, 0.0, CONFIG) == ("failed", 0.0)
    assert next_step("do_not_call", 1, 0.0, CONFIG) == ("cancelled", 0.0)


def test_channel_ids_are_uuid4_and_unique():
    """Generated ChannelIds match the validation pattern and do not repeat."""
    ids = {new_channel_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(CHANNEL_ID_RE.match(i) for i in ids)


def dialler():
    return Dialler(ami=None, jobs=None, config=OutboundConfig(), clock=None, metrics=None)


def test_callback_originate_goes_to_the_reserved_agents_queue():
    """A callback: Local channel into ccengine-outbound, answered side to
    ccengine-outbound-connect,<queue>; the bytes are one well-formed action."""
    job = new_job("cb-7", "callback", "13800000001", 0.0, "UTC", queue="inbound")
    fields = dict(dialler().originate_fields(job, new_channel_id(), "outbound"))
    assert fields["Channel"] == "Local/13800000001@ccengine-outbound/n"
    assert (fields["Context"], fields["Exten"], fields["Timeout"]) == (
        "ccengine-outbound-connect", "outbound", "30000")
    wire = Action("Originate", dialler().originate_fields(job, new_channel_id(), "outbound"),
                  "x-1").to_bytes()
    assert wire.count(b"\r\n\r\n") == 1 and wire.count(b"Variable: ") == 2


def test_followup_originate_carries_the_ticket_for_the_followup_route():
    """A complaint follow-up goes to ccengine-survey,followup with CCENGINE_TICKET set."""
    job = new_job("cf-42-1", "followup", "13800000001", 0.0, "UTC", origin="ticket:42")
    fields = dialler().originate_fields(job, new_channel_id(), "complaint")
    assert ("Exten", "followup") in fields and ("Variable", "CCENGINE_TICKET=42") in fields


@pytest.mark.parametrize("number", ["123&PJSIP/x", "1@trunk", "abc", "1" * 40, ""])
def test_unvalidated_numbers_never_reach_the_originate_fields(number):
    """Even if a bad number got into a job, the Originate is refused before any byte."""
    job = new_job("cb-1", "callback", "13800000001", 0.0, "UTC")
    object.__setattr__(job, "number", number)
    with pytest.raises(ValueError):
        dialler().originate_fields(job, new_channel_id(), "inbound")


def test_forged_channel_id_is_refused():
    """A ChannelId that is not our uuid4 (e.g. with CR/LF) is refused."""
    job = new_job("cb-1", "callback", "13800000001", 0.0, "UTC")
    with pytest.raises(ValueError):
        dialler().originate_fields(job, "x\r\nAction: Command", "inbound")
