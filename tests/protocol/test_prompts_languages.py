"""The same announcements in both languages at the protocol level: the STREAM FILE commands
written for a position/estimate announcement and an agent-number announcement, in zh and en.

Reply formats are those of tests/fixtures/agi (copies of ../shared/asterisk/transcripts2).
Numbers are spoken from rendered pieces (docs/prompts.md), so no SAY NUMBER is sent: every
piece is played as `<lang>/ccengine/<stem>`, which Asterisk resolves under its sounds directory
whatever the channel language is (main/file.c fileexists_core, cited in docs/prompts.md)."""
import pytest
import pytest_twisted

from agents_lab import AgentsLab
from agi_harness import ScriptedAsterisk, split_args
from test_agents_connect import variables
from test_waiting_announce import Caller, build, call


def streamed(asterisk):
    return [split_args(c)[2] for c in asterisk.commands if c.startswith(b"STREAM FILE")]


@pytest.mark.parametrize("lang, expected", [
    # position 1, 1 x 180 s / 2 agents = 90 s -> 2 minutes; zh says 两 before the measure word.
    # The closing "." is punctuation only and is not rendered as a piece.
    ("en", ["en/ccengine/position_announce-1", "en/ccengine/num/1",
            "en/ccengine/position_announce-2", "en/ccengine/num/2", "en/ccengine/word/minutes"]),
    ("zh", ["zh/ccengine/position_announce-1", "zh/ccengine/num/1",
            "zh/ccengine/position_announce-2", "zh/ccengine/word/two_measure",
            "zh/ccengine/word/minute"]),
])
@pytest_twisted.ensureDeferred
async def test_position_and_estimate_are_spoken_in_the_callers_language(redis_url, lang, expected):
    """The queue announcement speaks position and estimate with the caller's language pieces."""
    factory, registry, conn, _, r = build(redis_url, staffing=2, talk_times=(120, 240))
    caller = Caller(keys={"keep_waiting_or_callback": ["1"]}, variables={"CC_LANGUAGE": lang})
    asterisk = await call(factory, caller)
    files = streamed(asterisk)
    announcement = files[:files.index(f"{lang}/ccengine/keep_waiting_or_callback")]
    assert announcement == expected
    assert not any(c.startswith(b"SAY ") for c in asterisk.commands)
    await conn.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest_twisted.ensureDeferred
async def test_agent_number_is_read_digit_by_digit_in_the_callers_language(redis_url, lang):
    """agent-announce reads the agent number digit by digit in the caller's language."""
    lab = AgentsLab(redis_url)
    asterisk = ScriptedAsterisk(lab.factory, answer=variables(
        {"CCENGINE_QUEUE": "inbound", "MEMBERNAME": "1023", "CC_LANGUAGE": lang}))
    asterisk.dial("agent-announce")
    await asterisk.finished
    assert streamed(asterisk) == [f"{lang}/ccengine/agent_number-1"] + \
        [f"{lang}/ccengine/digit/{d}" for d in "1023"] + [f"{lang}/ccengine/agent_number-2"]
    await lab.close()
