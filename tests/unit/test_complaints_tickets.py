"""Complaint ticket transitions and notification fields: pure functions, no Redis."""
import pytest

from ccengine.complaints import tickets as t
from ccengine.complaints.sweeper import BadNotification, user_event_fields

HOURS = {"agent": 24, "supervisor": 48, "manager": 72}
H = 3600.0


def opened(now=1000.0):
    ticket, _ = t.open_ticket("7", now, HOURS, number="13800000001", agent="1003")
    return ticket


def test_open_sets_agent_level_and_its_deadline():
    """A new ticket is open at agent level with the agent deadline and an 'opened' history entry."""
    ticket, entry = t.open_ticket("7", 1000.0, HOURS, agent="1003")
    assert (ticket.state, ticket.level, ticket.deadline) == ("open", "agent", 1000.0 + 24 * H)
    assert entry["event"] == "opened" and entry["by"] == "1003"


def test_overdue_escalation_walks_the_chain_and_stops_at_manager():
    """Overdue escalations go agent -> supervisor -> manager, then mark chain_end once."""
    ticket = opened()
    now = ticket.deadline
    ticket, e1 = t.escalate(ticket, now, HOURS, reason="overdue")
    assert (ticket.state, ticket.level, ticket.deadline) == ("escalated", "supervisor", now + 48 * H)
    assert e1["level"] == ["agent", "supervisor"]
    now = ticket.deadline
    ticket, _ = t.escalate(ticket, now, HOURS, reason="overdue")
    assert ticket.level == "manager" and ticket.missed == 2
    now = ticket.deadline
    ticket, e3 = t.escalate(ticket, now, HOURS, reason="overdue")
    assert (ticket.level, ticket.chain_end, e3["event"]) == ("manager", True, "chain_end")
    with pytest.raises(t.TicketError):
        t.escalate(ticket, now + H, HOURS, reason="overdue")


def test_overdue_escalation_refused_before_the_deadline():
    """The sweeper's escalation is refused while the level deadline has not passed."""
    ticket = opened()
    with pytest.raises(t.TicketError):
        t.escalate(ticket, ticket.deadline - 1, HOURS, reason="overdue")


def test_warm_escalation_jumps_to_supervisor_and_not_twice():
    """A warm escalation puts the ticket at supervisor level; asking again is refused."""
    ticket, _ = t.escalate(opened(), 1001.0, HOURS, reason="warm", to_level="supervisor")
    assert (ticket.state, ticket.level, ticket.missed) == ("escalated", "supervisor", 0)
    with pytest.raises(t.TicketError):
        t.escalate(ticket, 1002.0, HOURS, reason="warm", to_level="supervisor")


def test_resolved_in_time_then_closed_is_within_limit():
    """Resolving before the deadline and closing counts as within the limit."""
    ticket, _ = t.resolve(opened(), 2000.0, "refund granted", by="1003")
    ticket, entry = t.close(ticket, 3000.0, by="1005")
    assert ticket.state == "closed" and entry["within_limit"] is True
    assert t.within_limit(ticket)


def test_a_missed_deadline_makes_the_ticket_late():
    """A ticket escalated for a missed deadline is closed late even if resolved quickly after."""
    ticket = opened()
    ticket, _ = t.escalate(ticket, ticket.deadline, HOURS, reason="overdue")
    ticket, _ = t.resolve(ticket, ticket.opened + 25 * H, "done")
    ticket, _ = t.close(ticket, ticket.opened + 26 * H)
    assert not t.within_limit(ticket)


@pytest.mark.parametrize("outcome", ["", "   ", None, "x" * 501, "line\nbreak", 5])
def test_resolve_refuses_bad_outcomes(outcome):
    """An empty, huge, multi-line or non-text outcome is refused."""
    with pytest.raises(t.TicketError):
        t.resolve(opened(), 2000.0, outcome)


def test_closed_ticket_cannot_be_resolved_or_assigned():
    """A closed ticket refuses resolve and assign."""
    ticket, _ = t.close(opened(), 2000.0)
    with pytest.raises(t.TicketError):
        t.resolve(ticket, 2001.0, "late")
    with pytest.raises(t.TicketError):
        t.assign(ticket, 2001.0, "1005")


@pytest.mark.parametrize("owner", ["", "a b", "x" * 41, "1005\r\nAction: Hangup", None])
def test_assign_refuses_bad_owners(owner):
    """Owners are short identifiers; spaces, control characters and non-text are refused."""
    with pytest.raises(t.TicketError):
        t.assign(opened(), 2000.0, owner)


def test_unsatisfied_followup_reopens_at_supervisor_level():
    """'Not satisfied' reopens a resolved ticket as escalated at supervisor with a new deadline."""
    ticket, _ = t.resolve(opened(), 2000.0, "explained")
    ticket, entry = t.followup_result(ticket, 90000.0, False, HOURS)
    assert (ticket.state, ticket.level, ticket.followup) == ("escalated", "supervisor", "unsatisfied")
    assert ticket.deadline == 90000.0 + 48 * H and ticket.resolved_at == 0.0
    assert entry["result"] == "unsatisfied"


def test_satisfied_followup_closes():
    """'Satisfied' closes the resolved ticket."""
    ticket, _ = t.resolve(opened(), 2000.0, "explained")
    ticket, _ = t.followup_result(ticket, 90000.0, True, HOURS)
    assert (ticket.state, ticket.followup, ticket.closed_at) == ("closed", "satisfied", 90000.0)


def test_followup_on_an_open_ticket_is_refused():
    """A follow-up answer for a ticket that is not resolved is refused."""
    with pytest.raises(t.TicketError):
        t.followup_result(opened(), 2000.0, True, HOURS)


def test_hash_round_trip_keeps_every_field():
    """to_hash/from_hash give back the same ticket."""
    ticket, _ = t.escalate(opened(), 1001.0, HOURS, reason="warm", to_level="supervisor")
    assert t.ComplaintTicket.from_hash(ticket.to_hash()) == ticket


def test_user_event_fields_are_validated():
    """A good outbox entry becomes UserEvent fields; injected text or unknown values are refused."""
    good = '{"ticket": "12", "level": "manager", "reason": "overdue", "deadline": 1795366410, "chain_end": true}'
    assert user_event_fields(good) == {"Ticket": "12", "Level": "manager", "Reason": "overdue",
                                       "Deadline": "1795366410", "ChainEnd": "1"}
    for bad in ['{"ticket": "12\\r\\nAction: Hangup", "level": "agent", "reason": "overdue", "deadline": 1}',
                '{"ticket": "12", "level": "boss", "reason": "overdue", "deadline": 1}',
                '{"ticket": "12", "level": "manager", "reason": "overdue", "deadline": "soon"}',
                "not json", "[]"]:
        with pytest.raises(BadNotification):
            user_event_fields(bad)
