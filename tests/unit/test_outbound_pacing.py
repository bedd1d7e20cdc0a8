"""Pacing never dials more customers than there are free agents (outbound/pacing.py).

A property test drives random sequences of agents becoming free or busy, dials starting
(through dial_budget and a hold per agent, as AgentPool does) and dials ending, and checks
after every step that no agent carries two dials and that each dial was started on an agent
who was free and not held at that moment."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ccengine.outbound.pacing import dial_budget

AGENTS = [f"10{i:02d}" for i in range(8)]

steps = st.lists(st.tuples(st.sampled_from(["free", "busy", "dial", "end"]),
                           st.sampled_from(AGENTS), st.integers(0, 5), st.integers(0, 6)),
                 max_size=80)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_dials_in_flight_never_exceed_free_agents(sequence):
    """In flight <= agents that were free when their dial started; one dial per agent."""
    free: set[str] = set()
    holds: dict[str, int] = {}            # agent -> dial number
    dial_no = 0
    for op, agent, rate_left, due in sequence:
        if op == "free":
            free.add(agent)
        elif op == "busy":
            free.discard(agent)
        elif op == "end" and holds:
            holds.pop(sorted(holds)[0])
        elif op == "dial":
            chosen = dial_budget(sorted(free), holds, rate_left, due)
            assert len(chosen) <= min(rate_left, due)
            assert len(set(chosen)) == len(chosen)
            for a in chosen:
                assert a in free and a not in holds
                dial_no += 1
                holds[a] = dial_no
        available_when_held = len(free | set(holds))
        assert len(holds) <= available_when_held
        assert len(holds) <= len(AGENTS)


def test_no_free_agent_means_no_dial():
    """Jobs are due and the rate allows, but every free agent is held: nothing is dialled."""
    assert dial_budget(["1001", "1002"], {"1001", "1002"}, 10, 5) == []


def test_rate_limit_caps_the_dials():
    """Four free agents, one dial left this minute: one dial."""
    assert dial_budget(["1001", "1002", "1003", "1004"], set(), 1, 9) == ["1001"]
