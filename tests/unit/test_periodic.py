"""PeriodicService: rounds on the injected clock, and a failed round never stops the loop."""
from twisted.internet.task import Clock

from ccengine.runtime.periodic import PeriodicService
from ccengine.store.base import StoreUnavailable


class Flaky(PeriodicService):
    name = "flaky"

    def __init__(self, clock, failures):
        super().__init__(clock, 10.0)
        self.failures = list(failures)
        self.rounds = 0

    async def round(self):
        self.rounds += 1
        if self.failures:
            raise self.failures.pop(0)


def test_rounds_follow_the_clock_and_survive_failures():
    """A Redis outage (StoreUnavailable) and a bug (RuntimeError) each cost one round only."""
    clock = Clock()
    service = Flaky(clock, [StoreUnavailable("down"), RuntimeError("bug")])
    service.startService()
    assert service.rounds == 0                    # run_at_start is False
    clock.advance(10)
    clock.advance(10)
    clock.advance(10)
    assert service.rounds == 3
    assert service.last_run.called and service._loop.running
    service.stopService()
    clock.advance(30)
    assert service.rounds == 3 and clock.getDelayedCalls() == []
