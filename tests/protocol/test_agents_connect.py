"""On-connect announcements at the AGI protocol level (reply formats of tests/fixtures/agi;
the variables are those app_queue sets with setinterfacevar=yes, see docs/agents.md)."""
import pytest_twisted

from agents_lab import AgentsLab
from agi_harness import ScriptedAsterisk


def variables(values):
    def answer(command):
        if command.startswith(b"GET VARIABLE "):
            name = command.split(b" ")[2].decode()
            if name in values:
                return f"200 result=1 ({values[name]})\n".encode()
        return None
    return answer


async def dial(lab, script, answer, **env):
    played = []

    def wrapped(command):
        if command.startswith(b"STREAM FILE "):
            played.append(command.split(b" ")[2].decode().split("/ccengine/")[-1])
        return answer(command)
    asterisk = ScriptedAsterisk(lab.factory, answer=wrapped)
    asterisk.dial(script, **env)
    await asterisk.finished
    return played


@pytest_twisted.ensureDeferred
async def test_caller_hears_the_agent_number_and_never_a_name(redis_url):
    """agent-announce plays 'Agent 1 0 2 3 will serve you' from MEMBERNAME; a member name that is
    not a number is not spoken."""
    lab = AgentsLab(redis_url)
    played = await dial(lab, "agent-announce", variables(
        {"CCENGINE_QUEUE": "inbound", "MEMBERNAME": "1023", "CC_LANGUAGE": "en"}))
    assert played == ["agent_number-1", "digit/1", "digit/0", "digit/2", "digit/3", "agent_number-2"]
    played = await dial(lab, "agent-announce", variables(
        {"CCENGINE_QUEUE": "inbound", "MEMBERNAME": "Agent 1003", "CC_LANGUAGE": "en"}))
    assert played == []
    await lab.close()


@pytest_twisted.ensureDeferred
async def test_agent_hears_the_wait_only_beyond_the_service_level(redis_url):
    """agent-whisper plays the caller's wait when it exceeds the queue's service_level_seconds
    (15 s for inbound) and stays silent below it."""
    lab = AgentsLab(redis_url)
    played = await dial(lab, "agent-whisper", variables({}), channel="PJSIP/1003-0000000b",
                        args=("inbound", "1000", "1040"))
    assert played == ["agent_whisper-1", "num/40", "word/second"]
    played = await dial(lab, "agent-whisper", variables({}), channel="PJSIP/1003-0000000c",
                        args=("inbound", "1000", "1010"))
    assert played == []
    await lab.close()
