"""FastAGI across engines on a real Asterisk 22: the first engine address (CCENGINE_AGI) has
nothing listening, the second (CCENGINE_AGI_2) is the running engine. A caller pressing 1 is
routed by the second engine (the IVR ran, the route was acknowledged) instead of taking the
plain fallback queue. Skipped unless CCENGINE_TEST_ASTERISK names an install prefix."""
from __future__ import annotations

from asterisk_lab import finished, keys
from ccengine.store.embedded import free_port

CALLER = "13800000004"


def test_the_second_engine_serves_the_call_when_the_first_is_unreachable(lab):
    agi_port, closed = lab.asterisk.agi_port, free_port()
    lab.asterisk.rx(f"dialplan set global CCENGINE_AGI 127.0.0.1:{closed}")
    lab.asterisk.rx(f"dialplan set global CCENGINE_AGI_2 127.0.0.1:{agi_port}")
    call = lab.sipp.call("caller", CALLER, [("wait", 4000)] + keys("1") + [("wait", 3000)])
    channel = lab.ami.wait("Newchannel", timeout=20, CallerIDNum=CALLER)["Uniqueid"]
    join = lab.ami.wait("QueueCallerJoin", timeout=30, Uniqueid=channel)
    assert finished(call, 40) == 0
    log = lab.asterisk.messages.read_text()
    assert f"Connecting to '127.0.0.1:{closed}' failed" in log   # the first was tried
    assert "AGI Rx << SET VARIABLE CC_ROUTE_OK" in log          # the engine routed it
    assert "no acknowledged route" not in log                    # not the plain fallback
    assert join["Queue"] == "inbound"
    print(f"\nfirst engine unreachable, second routed the call into {join['Queue']}")
