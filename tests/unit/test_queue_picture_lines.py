"""The queue picture's per-line callers (constant-time join at the back and leave from the
front) give exactly the positions, order and notifications of the one-dict picture it
replaced, whatever the events: that picture's join/leave/replace is kept here as the model."""
from dataclasses import replace

from hypothesis import given, settings, strategies as st
from twisted.internet.task import Clock

from ccengine.queues.picture import Caller, QueuePicture, _entry, _int, _timestamp


class Event(dict):
    """An AMI message as the picture reads it: get() and the server it came from."""

    def __init__(self, fields: dict, server: str = "") -> None:
        super().__init__(fields)
        self.server = server


class OneDictModel:
    """The picture's caller handling before the per-line change (commit e7bb812)."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.callers: dict[str, Caller] = {}
        self.heard: list = []

    def join(self, message) -> None:
        uniqueid, queue = message.get("Uniqueid") or "", message.get("Queue") or ""
        if not uniqueid or not queue:
            return
        position = _int(message.get("Position"))
        server = getattr(message, "server", "")
        for other in [c for c in self.callers.values() if c.queue == queue and c.server == server
                      and c.uniqueid != uniqueid and c.position >= position]:
            self.callers[other.uniqueid] = replace(other, position=other.position + 1)
        caller = Caller(queue, uniqueid, message.get("Channel") or "", position,
                        _timestamp(message, self.clock.seconds()), server=server)
        self.callers[uniqueid] = caller
        self.heard.append(("caller_joined", caller))

    def leave(self, message) -> None:
        caller = self.callers.pop(message.get("Uniqueid") or "", None)
        if caller is None:
            return
        for other in [c for c in self.callers.values() if c.queue == caller.queue
                      and c.server == caller.server and c.position > caller.position]:
            self.callers[other.uniqueid] = replace(other, position=other.position - 1)
        self.heard.append(("caller_left", caller))

    def replace(self, messages, server) -> None:
        now = self.clock.seconds()
        callers = {}
        if server is not None:
            callers = {k: c for k, c in self.callers.items() if c.server != server}
        for message in messages:
            if message.get("Event") == "QueueEntry":
                caller = _entry(message, now)
                if caller is not None:
                    callers[caller.uniqueid] = caller
        self.callers = callers
        self.heard.append(("resync", None))


UIDS = [f"u{i}" for i in range(8)]
QUEUES = ["inbound", "complaint"]
SERVERS = ["", "b"]

join = st.tuples(st.just("join"), st.sampled_from(UIDS), st.sampled_from(QUEUES),
                 st.sampled_from(SERVERS),
                 st.one_of(st.sampled_from(["back", "back", "back", "front"]),
                           st.integers(-1, 10)))
leave = st.tuples(st.just("leave"), st.sampled_from(UIDS + ["nobody"]))
status = st.tuples(st.just("status"), st.one_of(st.none(), st.sampled_from(SERVERS)),
                   st.lists(st.tuples(st.sampled_from(UIDS), st.sampled_from(QUEUES),
                                      st.integers(0, 6)), max_size=6))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(join, join, leave, leave, status), max_size=40))
def test_per_line_callers_match_the_one_dict_picture(steps):
    """Any sequence of joins (at the back, the front or any Position), leaves and QueueStatus
    answers (one server's or all) leaves the same callers in the same order with the same
    positions, the same waiting() lists, and the same notifications as the old picture."""
    clock = Clock()
    picture, model = QueuePicture(clock), OneDictModel(clock)
    heard = []
    picture.listen(lambda kind, what: heard.append((kind, what)))
    for n, step in enumerate(steps):
        clock.advance(1)
        if step[0] == "join":
            _, uid, queue, server, where = step
            count = sum(1 for c in model.callers.values()
                        if c.queue == queue and c.server == server)
            position = {"back": count + 1, "front": 1}.get(where, where)
            message = Event({"Event": "QueueCallerJoin", "Uniqueid": uid, "Queue": queue,
                             "Channel": f"PJSIP/c-{n}", "Position": str(position),
                             "Timestamp": f"{1000 + n}.5"}, server)
            picture.apply(message)
            model.join(message)
        elif step[0] == "leave":
            message = Event({"Event": "QueueCallerLeave", "Uniqueid": step[1],
                             "Queue": "inbound"})
            picture.apply(message)
            model.leave(message)
        else:
            _, server, entries = step
            messages = [Event({"Event": "QueueEntry", "Queue": queue, "Uniqueid": uid,
                               "Position": str(position), "Channel": "PJSIP/x", "Wait": "2",
                               "Priority": "0"}, server or "")
                        for uid, queue, position in entries]
            picture.replace(messages, server)
            model.replace(messages, server)
        assert list(picture.callers.items()) == list(model.callers.items())
        assert len(picture.callers) == len(model.callers)
        for queue in QUEUES:
            assert picture.waiting(queue) == sorted(
                (c for c in model.callers.values() if c.queue == queue),
                key=lambda c: (c.position, c.entered))
    assert heard == model.heard


def test_a_long_line_joins_at_the_back_and_leaves_from_the_front():
    """300 callers join at the back, then the first of them leaves 200 times while others join:
    the positions stay 1..n in arrival order (the constant-time path)."""
    picture = QueuePicture(Clock())
    for n in range(300):
        picture.apply(Event({"Event": "QueueCallerJoin", "Uniqueid": f"c{n}", "Queue": "inbound",
                             "Position": str(n + 1)}))
    for n in range(200):
        picture.apply(Event({"Event": "QueueCallerLeave", "Uniqueid": f"c{n}"}))
        picture.apply(Event({"Event": "QueueCallerJoin", "Uniqueid": f"c{300 + n}",
                             "Queue": "inbound", "Position": "300"}))
    waiting = picture.waiting("inbound")
    assert [c.uniqueid for c in waiting] == [f"c{n}" for n in range(200, 500)]
    assert [c.position for c in waiting] == list(range(1, 301))
    assert picture.callers["c200"].position == 1
