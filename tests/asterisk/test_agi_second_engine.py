"""FastAGI across engines on a real Asterisk 22: the first engine address (CCENGINE_AGI) has
nothing listening, the second (CCENGINE_AGI_2) is the running engine. A caller pressing 1 is
routed by the second engine (the IVR ran, the route was acknowledged) instead of taking the
plain fallback queue; an agent's feature code and the connect hooks reach it too. Skipped unless CCENGINE_TEST_ASTERISK names an install prefix."""
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


def test_feature_codes_and_connect_hooks_reach_the_second_engine(lab):
    """With the first engine unreachable, an agent's *71 login is served by the second (the
    feature-code body tries CCENGINE_AGI_2 on AGISTATUS=FAILURE), a caller is routed by it,
    and the connect hooks (agent-announce on the caller, agent-whisper on the agent) run on
    the engine that answered the caller (CCENGINE_AGI_USED), not on the closed one."""
    from test_real_calls import log_in

    agi_port, closed = lab.asterisk.agi_port, free_port()
    lab.asterisk.rx(f"dialplan set global CCENGINE_AGI 127.0.0.1:{closed}")
    lab.asterisk.rx(f"dialplan set global CCENGINE_AGI_2 127.0.0.1:{agi_port}")
    log_in(lab)                                  # waits for QueueMemberAdded of agent 1001
    call = lab.sipp.call("caller", CALLER, [("wait", 4000)] + keys("1") + [("wait", 8000)])
    channel = lab.ami.wait("Newchannel", timeout=20, CallerIDNum=CALLER)["Uniqueid"]
    lab.ami.wait("AgentConnect", timeout=30, Uniqueid=channel)
    assert finished(call, 60) == 0
    log = lab.asterisk.messages.read_text()
    served = {script for script in ("agent-login", "hotline", "agent-announce", "agent-whisper")
              if f"AGI Tx >> agi_request: agi://127.0.0.1:{agi_port}/{script}" in log}
    assert served == {"agent-login", "hotline", "agent-announce", "agent-whisper"}
    # The connect hook on the caller (Queue()'s AGI argument, one URL) went straight to the
    # engine that had answered this caller; the login and the whisper tried the first first.
    assert f"failed for url 'agi://127.0.0.1:{closed}/agent-announce'" not in log
    assert f"failed for url 'agi://127.0.0.1:{closed}/agent-login'" in log
    print(f"\nfirst engine unreachable: {', '.join(sorted(served))} served by the second")
