"""agents.serial.Serial: one member's events in order, different members' events overlapping,
exclusive work (resyncs) between everything queued before and after it."""
from twisted.internet.defer import Deferred

from ccengine.agents.serial import Serial


class Steps:
    """Tasks that start, log it, and finish when the test says."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gates: dict[str, Deferred] = {}

    def task(self, name: str, fail: bool = False):
        async def run():
            self.log.append(f"start {name}")
            gate = self.gates[name] = Deferred()
            await gate
            self.log.append(f"end {name}")
            if fail:
                raise RuntimeError(name)
            return name
        return run

    def finish(self, name: str) -> None:
        self.gates[name].callback(None)


def test_different_members_overlap_and_one_members_events_keep_their_order():
    """a1 and b1 (two members) both start at once; a2 starts only after a1 ended."""
    steps, serial = Steps(), Serial()
    results = []
    serial.run_for("PJSIP/a", steps.task("a1")).addCallback(results.append)
    serial.run_for("PJSIP/b", steps.task("b1"))
    serial.run_for("PJSIP/a", steps.task("a2"))
    assert steps.log == ["start a1", "start b1"]
    steps.finish("b1")
    assert steps.log[-1] == "end b1" and "start a2" not in steps.log
    steps.finish("a1")
    assert steps.log[-2:] == ["end a1", "start a2"]
    assert results == ["a1"]


def test_an_exclusive_task_waits_for_everything_before_and_holds_everything_after():
    """A resync queued after a1 and b1 starts when both ended; c1, queued after it, starts
    when it ended."""
    steps, serial = Steps(), Serial()
    serial.run_for("a", steps.task("a1"))
    serial.run_for("b", steps.task("b1"))
    serial.run(steps.task("resync"))
    serial.run_for("c", steps.task("c1"))
    steps.finish("a1")
    assert "start resync" not in steps.log
    steps.finish("b1")
    assert steps.log[-1] == "start resync" and "start c1" not in steps.log
    steps.finish("resync")
    assert steps.log[-2:] == ["end resync", "start c1"]


def test_a_failed_task_does_not_stop_the_next_and_its_caller_gets_the_failure():
    """a1 fails: its caller's Deferred fails with the error, a2 still runs."""
    steps, serial = Steps(), Serial()
    failures = []
    serial.run_for("a", steps.task("a1", fail=True)).addErrback(
        lambda f: failures.append(f.value.args[0]))
    serial.run_for("a", steps.task("a2"))
    steps.finish("a1")
    assert failures == ["a1"] and steps.log[-1] == "start a2"


def test_drained_fires_once_nothing_is_queued():
    """drained() waits for member events and exclusive work, then fires."""
    steps, serial = Steps(), Serial()
    serial.run_for("a", steps.task("a1"))
    serial.run(steps.task("resync"))
    drained = []
    serial.drained().addCallback(drained.append)
    steps.finish("a1")
    assert drained == []
    steps.finish("resync")
    assert drained == [None]
    empty = []
    Serial().drained().addCallback(empty.append)
    assert empty == [None]


def test_at_most_concurrency_member_events_run_at_once():
    """With room for two, the third member's event starts when one of the first two ended."""
    steps, serial = Steps(), Serial(concurrency=2)
    for name in ("a1", "b1", "c1"):
        serial.run_for(name[0], steps.task(name))
    assert steps.log == ["start a1", "start b1"]
    steps.finish("b1")
    assert steps.log[-1] == "start c1"
