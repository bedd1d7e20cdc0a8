"""`ccengine ami-check` (pyst2, blocking, one-shot) against a fake Asterisk AMI server.

The fake server is a `socketserver` thread on a free loopback port that answers with bytes
recorded from Asterisk 22.10.1:
- banner `Asterisk Call Manager/11.0.0\\r\\n` (transcripts2 AMI note 1);
- Login with the right secret: ami4_login_ping_events c1 `Authentication accepted`, then c1's
  FullyBooted event; with a wrong secret: ami4 c2 `Authentication failed` 1 s after the Login
  (c2: sent 16:51:35.304, answered 16:51:36.305), then it closes the connection like Asterisk;
- Ping: ami4 c1 `Ping: Pong`;
- QueueSummary: d_queuestatus_idle's response, its four QueueSummary events and
  QueueSummaryComplete (ActionID lab-3);
- Logoff: ami4 c1 `Response: Goodbye` (end of c1), then it closes the connection.
Recorded ActionIDs are replaced by the client's.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ami_replay
from asterisk.manager import Manager

from ccengine.cli import amicheck
from ccengine.ami.wire import BlockSplitter, Message
from ccengine.cli import _config_arg

# pyst2 uses threading's pre-3.10 names (isSet, setDaemon, currentThread).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:asterisk.manager")

SECRET = "lab2-right-secret-0123"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
AMI4 = "ami4_login_ping_events"


def _first(messages, **headers) -> Message:
    return next(m for m in messages if all(m.get(k) == v for k, v in headers.items()))


_C1 = ami_replay.raw_messages(AMI4, 1)
LOGIN_OK = _first(_C1, Response="Success", Message="Authentication accepted")
FULLY_BOOTED = _first(_C1, Event="FullyBooted")
PONG = _first(_C1, Ping="Pong")
GOODBYE = _first(_C1, Response="Goodbye")
AUTH_FAILED = _first(ami_replay.raw_messages(AMI4, 2), Message="Authentication failed")
QUEUE_SUMMARY = [m for m in ami_replay.received_messages("d_queuestatus_idle")
                 if m.action_id == "lab-3"]


class FakeAsterisk(socketserver.ThreadingTCPServer):
    """Replays the captures above; records every action it receives. `silent`: never writes."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, silent: bool = False):
        super().__init__(("127.0.0.1", 0), _AmiHandler)
        self.silent = silent
        self.connections = 0
        self.actions: list[Message] = []

    @property
    def port(self) -> int:
        return self.server_address[1]

    def answer(self, action: Message) -> tuple[list[Message], bool]:
        """(messages to send, close afterwards) for one action."""
        name = action["Action"].lower()
        if name == "login" and action.get("Secret") == SECRET:
            return [LOGIN_OK, FULLY_BOOTED], False
        if name == "login":
            time.sleep(1.0)  # Asterisk's delay before a failed Login's answer (ami4 c2)
            return [AUTH_FAILED], True
        if name == "ping":
            return [PONG], False
        if name == "queuesummary":
            return QUEUE_SUMMARY, False
        if name == "logoff":
            return [GOODBYE], True
        raise AssertionError(f"the check sent an unexpected action: {action!r}")


class _AmiHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: FakeAsterisk = self.server
        server.connections += 1
        # Explicit: an accepted socket would otherwise inherit the check's default timeout.
        self.request.settimeout(30)
        if not server.silent:
            self.request.sendall(BANNER)
        splitter = BlockSplitter()
        while data := self.request.recv(4096):
            for block in splitter.feed(data):
                action = Message.parse(block)
                server.actions.append(action)
                if server.silent:
                    continue
                replies, close = server.answer(action)
                self.request.sendall(b"".join(
                    (ami_replay.retag(m, action.action_id) if m.action_id else m).to_bytes()
                    for m in replies))
                if close:
                    return


@pytest.fixture
def fake_asterisk():
    servers = []

    def start(silent: bool = False) -> FakeAsterisk:
        server = FakeAsterisk(silent)
        threading.Thread(target=server.serve_forever, name="fake-asterisk", daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_leftover_threads():
    """Every thread a check starts (its worker, pyst2's three) has ended once the test is done."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in set(threading.enumerate()) - before if t.name != "fake-asterisk"]
    for thread in leftover:
        thread.join(10)  # a bound for a broken check, not a wait for the normal case
    assert [t for t in leftover if t.is_alive()] == []


def write_config(tmp_path: Path, port: int, username: str = "ccengine") -> str:
    path = tmp_path / "ccengine.toml"
    # json.dumps gives a valid TOML basic string, escapes (\r, \n, \u0000) included.
    path.write_text(f'[ami]\nhost = "127.0.0.1"\nport = {port}\nusername = {json.dumps(username)}\n',
                    encoding="utf-8")
    return str(path)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    amicheck.register(parser.add_subparsers(dest="command", required=True), _config_arg)
    args = parser.parse_args(["ami-check", *argv])
    return args.func(args)


def free_port_without_listener() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_all_steps_pass_against_recorded_asterisk(fake_asterisk, tmp_path, monkeypatch, capsys,
                                                  no_leftover_threads):
    """Against the replayed Login, Ping, QueueSummary and Logoff every step prints OK, the
    exit code is 0, and the secret is sent to Asterisk but never printed."""
    server = fake_asterisk()
    monkeypatch.setenv("CCENGINE_AMI_SECRET", SECRET)
    assert run("--config", write_config(tmp_path, server.port), "--timeout", "5") == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[:4] == [
        f"OK connect: Asterisk Call Manager/11.0.0 at 127.0.0.1:{server.port}",
        "OK login: Authentication accepted",
        "OK ping: Pong",
        "OK queuesummary: 4 queue(s): outbound, complaint, inbound, supervisor",
    ]
    # The second form is pyst2's flush() race on Asterisk's immediate close (RacingManager).
    assert lines[4:] in (["OK logoff: Goodbye"], ["OK logoff: connection closed by Asterisk"])
    assert [a["Action"] for a in server.actions] == ["Login", "Ping", "QueueSummary", "Logoff"]
    assert server.actions[0]["Username"] == "ccengine" and server.actions[0]["Secret"] == SECRET
    assert SECRET not in out + err


def test_configured_queue_missing_in_asterisk_is_noted(fake_asterisk, tmp_path, monkeypatch,
                                                       capsys, no_leftover_threads):
    """A queue of the configuration that QueueSummary does not list is named in a note."""
    server = fake_asterisk()
    monkeypatch.setenv("CCENGINE_AMI_SECRET", SECRET)
    config = Path(write_config(tmp_path, server.port))
    config.write_text(config.read_text() + '[queues.vip]\nservice_level_seconds = 10\n')
    assert run("--config", str(config), "--timeout", "5") == 0
    assert "  note: configured queues Asterisk does not report: vip" in capsys.readouterr().out


class RacingManager(Manager):
    """pyst2's Manager made to lose, every time, the race amicheck handles: Asterisk answers
    Logoff and closes before send_action() reaches its flush() after the write."""

    def logoff(self):
        self._sock.write(b"Action: Logoff\r\nActionID: race-1\r\n\r\n")
        self.message_thread.join(10)  # the reader has seen the close and closed the file
        self._sock.flush()  # what send_action() does next: raises ValueError on a closed file


def test_logoff_closed_before_pyst2_flushes_still_passes(fake_asterisk, no_leftover_threads):
    """When Asterisk's close after Goodbye beats pyst2's flush() (ValueError on a closed file),
    Logoff still counts as done: OK logoff, exit 0."""
    server = fake_asterisk()
    target = amicheck.AmiTarget("127.0.0.1", server.port, "ccengine", SECRET, "CCENGINE_AMI_SECRET")
    lines: list[str] = []
    assert amicheck.run_check(target, 5, write=lines.append, manager_factory=RacingManager) == 0
    assert lines[-1] == "OK logoff: connection closed by Asterisk"
    assert server.actions[-1]["Action"] == "Logoff"


def test_wrong_secret_fails_login_with_hint(fake_asterisk, tmp_path, monkeypatch, capsys,
                                            no_leftover_threads):
    """ami4 c2's `Authentication failed` (then the close) is FAIL login, exit 1, with a hint
    naming CCENGINE_AMI_SECRET and manager.conf; nothing after Login is sent."""
    server = fake_asterisk()
    monkeypatch.setenv("CCENGINE_AMI_SECRET", "not-the-secret-at-all")
    assert run("--config", write_config(tmp_path, server.port), "--timeout", "5") == 1
    out = capsys.readouterr().out
    assert "FAIL login: Authentication failed" in out
    hint = next(line for line in out.splitlines() if line.startswith("  hint:"))
    assert "CCENGINE_AMI_SECRET" in hint and "manager.conf" in hint
    assert [a["Action"] for a in server.actions] == ["Login"]
    assert "not-the-secret-at-all" not in out


def test_nothing_listening_is_connection_refused(tmp_path, monkeypatch, capsys,
                                                 no_leftover_threads):
    """A closed port is FAIL connect: connection refused, exit 1, with the bindaddr/port hint."""
    monkeypatch.setenv("CCENGINE_AMI_SECRET", SECRET)
    port = free_port_without_listener()
    assert run("--config", write_config(tmp_path, port), "--timeout", "5") == 1
    out = capsys.readouterr().out
    assert "FAIL connect: connection refused" in out
    assert "bindaddr" in out and "port" in out


def test_missing_secret_is_a_config_problem(fake_asterisk, tmp_path, monkeypatch, capsys):
    """Without CCENGINE_AMI_SECRET (and no secret file) the check exits 2 without connecting."""
    server = fake_asterisk()
    monkeypatch.delenv("CCENGINE_AMI_SECRET", raising=False)
    assert run("--config", write_config(tmp_path, server.port)) == 2
    assert "CCENGINE_AMI_SECRET" in capsys.readouterr().err
    assert server.connections == 0


def test_broken_config_exits_2(tmp_path, monkeypatch, capsys):
    """An unknown key in the configuration is reported and the check exits 2."""
    monkeypatch.setenv("CCENGINE_AMI_SECRET", SECRET)
    path = tmp_path / "bad.toml"
    path.write_text("[ami]\nprot = 5038\n", encoding="utf-8")
    assert run("--config", str(path)) == 2
    assert "prot" in capsys.readouterr().err


@pytest.mark.parametrize("secret,username,in_file", [
    (SECRET + "\r\nAction: Originate", "ccengine", False),
    ("secret\x00tail-0123456789", "ccengine", True),  # an environment value cannot hold NUL
    (SECRET, "ccengine\r\nX: y", False),
])
def test_cr_lf_nul_refused_before_anything_is_sent(fake_asterisk, tmp_path, monkeypatch, capsys,
                                                   secret, username, in_file):
    """A secret (environment or ami.secret_file) or username with CR, LF or NUL is refused
    (exit 2) before pyst2 connects: the fake server sees no connection and no Login."""
    server = fake_asterisk()
    config = Path(write_config(tmp_path, server.port, username))
    monkeypatch.delenv("CCENGINE_AMI_SECRET", raising=False)
    if in_file:
        (tmp_path / "ami.secret").write_text(secret + "\n", encoding="utf-8")
        config.write_text(config.read_text() + f'secret_file = "{tmp_path / "ami.secret"}"\n')
    else:
        monkeypatch.setenv("CCENGINE_AMI_SECRET", secret)
    assert run("--config", str(config)) == 2
    err = capsys.readouterr().err
    assert "CR, LF or NUL" in err and "Originate" not in err
    assert server.connections == 0 and server.actions == []


# A separate process, to show that the process itself ends although pyst2's connect() stays
# blocked forever in its worker thread (it waits for a banner that never comes).
CLI = ("import argparse, sys\n"
       "from ccengine.cli import amicheck\n"
       "from ccengine.cli import _config_arg\n"
       "parser = argparse.ArgumentParser()\n"
       "amicheck.register(parser.add_subparsers(dest='command', required=True), _config_arg)\n"
       "args = parser.parse_args(sys.argv[1:])\n"
       "sys.exit(args.func(args))\n")


def test_silent_server_fails_after_the_timeout_and_the_process_exits(fake_asterisk, tmp_path):
    """A server that accepts and never answers gives FAIL connect: no answer within 1 s, exit 1,
    and the process ends (subprocess.run's own limit only keeps a broken check from hanging)."""
    server = fake_asterisk(silent=True)
    env = {**os.environ, "CCENGINE_AMI_SECRET": SECRET}
    done = subprocess.run([sys.executable, "-c", CLI, "ami-check", "--config",
                           write_config(tmp_path, server.port), "--timeout", "1"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "FAIL connect: no answer within 1 s" in done.stdout
    assert server.connections == 1 and server.actions == []
