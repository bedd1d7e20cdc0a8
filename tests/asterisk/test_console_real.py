"""The supervisor console's actions on a real Asterisk 22 (tests/asterisk_lab.py): listen with
ChanSpy on a PJSIP member's call, and a recorded queue's MixMonitor file played back.

Phone 1005 plays the supervisor's own phone (SIPp answers it); agent 1001 logs in with *71
and takes a caller's call. Skipped unless CCENGINE_TEST_ASTERISK names an install prefix.
"""
from __future__ import annotations

import subprocess
import wave

from asterisk_lab import AGENT_PIN, finished, keys, wait_for
from console_floor import Client

CALLER = "13800000003"
SUPERVISOR = ("sara", "sara-password-1")


def log_in_agent(lab, talk, agent: str = "1001") -> None:
    lab.sipp.agent_phone(agent, ring_ms=500, talk=talk)
    steps = [("wait", 1500)] + keys(agent + "#") + [("wait", 1200)] + keys(AGENT_PIN + "#")
    assert finished(lab.sipp.feature_code(f"login-{agent}", agent, "*71", steps), 60) != 255
    lab.ami.wait("QueueMemberAdded", timeout=30, Queue="inbound", MemberName=agent)


def restart_engine_recording_inbound(lab, recordings) -> None:
    """inbound gets record = true; the dialplan's CCENGINE_RECORDINGS and the engine's
    recordings.dir name the same directory."""
    lab.engine.stop()
    text = lab.engine.config.read_text()
    text = text.replace("[queues.inbound]\n", "[queues.inbound]\nrecord = true\n")
    text += f'[recordings]\ndir = "{recordings}"\n'
    lab.engine.config.write_text(text)
    lab.asterisk.rx(f"dialplan set global CCENGINE_RECORDINGS {recordings}")
    lab.engine.start()


def test_listen_on_a_pjsip_agents_call_and_play_its_recording(lab, tmp_path):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    restart_engine_recording_inbound(lab, recordings)
    lab.engine.cli("users", "add", SUPERVISOR[0], "--role", "supervisor", "--phone", "1005",
                   "--password-stdin", input=SUPERVISOR[1] + "\n")
    # The agent's phone speaks (a tone as RTP), so the recording has audio in it: SIPp sends
    # no media otherwise and MixMonitor would write a header only.
    talk = tmp_path / "agent-voice.ulaw"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(talk), "synth", "30",
                    "sine", "600", "vol", "0.3"], check=True)
    log_in_agent(lab, talk)
    lab.sipp.agent_phone("1005", ring_ms=300)          # the supervisor's phone answers
    call = lab.sipp.call("caller", CALLER, [("wait", 4000), ("key", "1"), ("wait", 16000)])
    channel = lab.ami.wait("Newchannel", timeout=20, CallerIDNum=CALLER)["Uniqueid"]
    lab.ami.wait("AgentConnect", timeout=30, Uniqueid=channel)

    console = Client(lab.engine.http_port)
    assert console.login(*SUPERVISOR) == 303
    wait_for(lambda: "on a call" in console.request("GET", "/console?lang=en")[2], 10,
             "agent 1001 on a call on the console")
    status, _, text = console.request("POST", "/console/action/listen", {"agent": "1001"},
                                      headers={"X-CSRF-Token": console.csrf()})
    assert status == 200, text
    spy = lab.ami.wait("ChanSpyStart", timeout=20)
    print(f"\nChanSpyStart: spyer {spy['SpyerChannel']}, spyee {spy['SpyeeChannel']}")
    assert spy["SpyerChannel"].startswith("PJSIP/1005-")
    assert spy["SpyeeChannel"].startswith("PJSIP/1001-")
    assert finished(call, 60) == 0
    lab.ami.wait("ChanSpyStop", timeout=20)

    # The recording: named by the call id, written by MixMonitor, on the call record.
    path = recordings / f"{channel}.wav"
    wait_for(lambda: path.exists() and path.stat().st_size > 44, 20, "the recording file")
    with wave.open(str(path)) as audio:
        seconds = audio.getnframes() / audio.getframerate()
    print(f"recording {path.name}: {seconds:.1f} s")
    assert seconds > 5
    status, headers, body = console.request("GET", f"/console/recording/{channel}")
    assert status == 200 and headers["content-type"] == "audio/wav"
    heard = lab.asterisk.messages.read_text()
    assert "recording_notice" in heard                  # the caller was told first
    assert "MixMonitor" in heard
