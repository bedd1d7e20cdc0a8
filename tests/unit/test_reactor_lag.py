"""The reactor-lag probe (ccengine/runtime/lag.py) on a task.Clock: how late its timer fired."""
from __future__ import annotations

from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

from ccengine.runtime.lag import ReactorLagProbe


def test_lag_is_the_time_a_timer_fired_after_it_was_due():
    """On time: 0 s; a reactor busy for 0.3 s past the due time: 0.3 s in the 0.5 s bucket;
    stopping leaves no timer behind."""
    clock, registry = Clock(), CollectorRegistry()
    probe = ReactorLagProbe(clock, registry, interval=0.25)
    probe.startService()
    clock.advance(0.25)                    # fired exactly when due
    clock.advance(0.25 + 0.3)              # the reactor was busy: fired 0.3 s late
    value = lambda name, **l: registry.get_sample_value(name, l)  # noqa: E731
    assert value("ccengine_reactor_lag_seconds_count") == 2.0
    assert abs(value("ccengine_reactor_lag_seconds_sum") - 0.3) < 1e-9
    assert value("ccengine_reactor_lag_seconds_bucket", le="0.25") == 1.0
    assert value("ccengine_reactor_lag_seconds_bucket", le="0.5") == 2.0
    probe.stopService()
    assert clock.getDelayedCalls() == []
