"""Two engines on one real Asterisk 22 (ami.shared), and the first killed with SIGKILL while a
caller is in its IVR (issue 23, "killing any one engine during calls"). CCENGINE_AGI names
engine a, CCENGINE_AGI_2 engine b. The agent logged in through a stays logged in; the caller
whose IVR died with a still reaches the queue (the dialplan's fallback) and the agent; engine b takes the events lease
of the server; the next caller is routed by b. Skipped unless CCENGINE_TEST_ASTERISK names an
install prefix."""
from __future__ import annotations

import signal

import pytest

from asterisk_lab import Engine, finished, keys, wait_for
from ccengine.store.embedded import free_port

FIRST, SECOND = "13800000005", "13800000006"


def owner(engine: Engine) -> bool:
    return engine.metric("ccengine_ami_owner", server="asterisk") == 1.0


@pytest.mark.engine_down                       # the fixture does not start its engine
def test_a_killed_engine_loses_no_login_and_no_caller(lab):
    from test_real_calls import log_in

    a = lab.engine
    a.shared, a.name = True, "a"
    a.write_config()
    a.start()
    b = Engine(lab.engine.home.parent / "engine-b", lab.asterisk, a.redis_url, a.sounds,
               agi_port=free_port(), shared=True, name="b")
    b.home.mkdir()
    b.write_config()
    b.start()
    try:
        lab.asterisk.rx(f"dialplan set global CCENGINE_AGI 127.0.0.1:{lab.asterisk.agi_port}")
        lab.asterisk.rx(f"dialplan set global CCENGINE_AGI_2 127.0.0.1:{b.agi_port}")
        wait_for(lambda: owner(a) or owner(b), 10, "an owner of the server's events")
        log_in(lab)                                # *71 through engine a
        # The first caller: engine a dies while its IVR plays the greeting.
        call = lab.sipp.call("caller", FIRST, [("wait", 4000)] + keys("1") + [("wait", 8000)])
        channel = lab.ami.wait("Newchannel", timeout=20, CallerIDNum=FIRST)["Uniqueid"]
        lab.ami.wait("AGIExecStart", timeout=20, Uniqueid=channel)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        join = lab.ami.wait("QueueCallerJoin", timeout=30, Uniqueid=channel)
        # Seen on 22.10.1: a FastAGI socket closed mid-session ends the AGI with
        # AGISTATUS=SUCCESS, so the second engine is not tried; without CC_ROUTE_OK the caller
        # takes the plain fallback queue (tests/fixtures/asterisk_lab25).
        assert 'AGISTATUS=SUCCESS (logged only) CC_ROUTE_OK=")' in \
            lab.asterisk.messages.read_text()
        lab.ami.wait("AgentConnect", timeout=30, Uniqueid=channel)
        assert finished(call, 60) == 0
        wait_for(lambda: owner(b), 10, "engine b following the events")
        # The login made through a is still there: b sees agent 1001 logged in.
        listing = b.cli("agents", "list", "--json")
        assert '"1001"' in listing.stdout and "inbound" in listing.stdout
        # The next caller: a's address is closed now; b routes the call.
        second = lab.sipp.call("caller2", SECOND, [("wait", 4000)] + keys("1") +
                               [("wait", 8000)])
        channel2 = lab.ami.wait("Newchannel", timeout=20, CallerIDNum=SECOND)["Uniqueid"]
        join2 = lab.ami.wait("QueueCallerJoin", timeout=30, Uniqueid=channel2)
        lab.ami.wait("AgentConnect", timeout=30, Uniqueid=channel2)
        assert finished(second, 60) == 0
        log = lab.asterisk.messages.read_text()
        assert f"AGI Tx >> agi_request: agi://127.0.0.1:{b.agi_port}/hotline" in log
        wait_for(lambda: b.metric("ccengine_queue_answered_total", queue="inbound",
                                  server="asterisk") == 1.0, 10, "b counting the answer")
        print(f"\nengine a killed in the first caller's IVR: that caller joined "
              f"{join['Queue']}, was answered; b owns the events; the second caller joined "
              f"{join2['Queue']} through b and was answered")
    finally:
        b.stop()
