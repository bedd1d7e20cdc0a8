"""The shipped deploy/asterisk/manager.conf lets through exactly the events the engine reads:
its read= classes and eventfilter lines applied, as main/manager.c applies them (the model in
bench/ami_real.py), to every event Asterisk 22.10.1 sent in transcripts3 load_2cps_ami
(tests/fixtures/ami/load_2cps_ami.raw.xz; each event's class is its Privilege: header)."""
from __future__ import annotations

from collections import Counter
from functools import lru_cache

from bench import ami_real
from ccengine.ami.client import LOGIN_EVENTS
from ccengine.queues.feed import EVENTS, VARSET_VARIABLES

# Events the engine subscribes to outside the queue feed: the dialler's (outbound/dialler.py).
OTHER_SUBSCRIPTIONS = ("OriginateResponse",)


@lru_cache(maxsize=1)
def delivered() -> tuple[list[ami_real.Event], list[ami_real.Event]]:
    events = ami_real.load_capture()
    user = ami_real.manager_user(ami_real.MANAGER_CONF, ami_real.AMI_USER)
    return events, [e for e in events if user.sends(e, LOGIN_EVENTS)]


def test_every_delivered_event_is_one_the_engine_reads():
    """Nothing reaches the engine that no subscription takes; of VarSet only its variables."""
    _, sent = delivered()
    wanted = set(EVENTS) | set(OTHER_SUBSCRIPTIONS)
    assert {e.name for e in sent} <= wanted
    for event in sent:
        if event.name == "VarSet":
            assert event.block.split(b"\r\nVariable: ")[1].split(b"\r\n")[0].decode() \
                in VARSET_VARIABLES


def test_every_event_the_engine_reads_is_delivered():
    """Each captured event the engine's subscriptions take (in a class the user is not denied
    for safety: system is never granted) reaches it, QUEUESTATUS VarSets included."""
    events, sent = delivered()
    wanted = set(EVENTS) | set(OTHER_SUBSCRIPTIONS)

    def read(e: ami_real.Event) -> bool:
        if e.name == "VarSet":
            return b"\r\nVariable: QUEUESTATUS\r\n" in e.block \
                or b"\r\nVariable: QUEUE_WITHDRAW_INFO\r\n" in e.block
        return e.name in wanted and "system" not in e.classes
    assert [e for e in events if read(e)] == sent
    counts = Counter(e.name for e in sent)
    assert counts["VarSet"] == 120 and counts["QueueCallerJoin"] == 120
    assert "Newexten" not in counts and "FullyBooted" not in counts


def test_varset_is_a_dialplan_event_in_the_capture():
    """Asterisk sends VarSet and Newexten as `dialplan` events (main/stasis_channels.c
    varset_to_ami: EVENT_FLAG_DIALPLAN), so read= needs that class for any VarSet."""
    events, _ = delivered()
    assert {e.classes for e in events if e.name in ("VarSet", "Newexten")} == {
        frozenset({"dialplan"})}


def test_the_login_mask_covers_every_class_the_engine_reads():
    """The Login's Events mask keeps every class of a subscribed event of the capture (with
    read=all it would otherwise lose events it reads)."""
    events, _ = delivered()
    wanted = set(EVENTS) | set(OTHER_SUBSCRIPTIONS)
    mask = ami_real.mask_of(LOGIN_EVENTS)
    assert all(e.classes <= mask for e in events if e.name in wanted)
    assert "agi" not in mask and "reporting" not in mask


def test_filter_semantics_follow_asterisk():
    """Advanced filters as main/manager.c parses them: header() gets its ':' appended, exact
    compares the value after the blanks, action(exclude) and a '!' pattern exclude."""
    include = ami_real.parse_filter("eventfilter(action(include),name(VarSet),header(Variable),"
                                    "method(exact))", "QUEUESTATUS")
    assert include.header == "Variable:" and not include.exclude
    varset = ami_real.Event(0.0, b"Event: VarSet\r\nVariable:   QUEUESTATUS\r\nValue: TIMEOUT",
                            "VarSet", frozenset({"dialplan"}))
    text = varset.block.decode() + "\r\n\r\n"
    assert include.matches(varset, text)
    assert not ami_real.parse_filter("eventfilter(name(VarSet),header(Value),method(exact))",
                                     "TIME").matches(varset, text)
    assert ami_real.parse_filter("eventfilter", "!Event: Newexten").exclude
    user = ami_real.ManagerUser(frozenset({"dialplan"}), (include,), ())
    assert user.sends(varset, "on") and not user.sends(varset, "agent,call")
