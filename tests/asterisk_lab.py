"""A real Asterisk with the project's dialplans, a real engine and SIPp phones, on loopback.

Nothing here builds Asterisk: CCENGINE_TEST_ASTERISK names an install prefix made by hand
(DEVELOPERS.md, "A real Asterisk, by hand"); without it the tests in this folder skip.

The Asterisk configuration is the one an admin deploys: deploy/asterisk/extensions.conf,
queues.conf, features.conf and modules.conf as they are, dialplans/ as etc/ccengine/, and
deploy/asterisk/manager.conf with its placeholder secret and port replaced. Only what a lab
must differ in is written here: pjsip.conf (a caller endpoint identified by address and agent
phones 1001-1005 with static contacts on SIPp's ports, DTMF by SIP INFO), directories and
ports, a music-on-hold tone and a logger that keeps every WARNING and ERROR with milliseconds.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ccengine.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / ".venv" / "bin" / "ccengine"
AMI_SECRET = "lab-secret-9f3c1d2e"
OBSERVER_SECRET = "lab-observer-51a7c0"
AGENTS = ("1001", "1002", "1003", "1004", "1005")
AGENT_PIN = "4826"


def prefix() -> Path | None:
    value = os.environ.get("CCENGINE_TEST_ASTERISK", "")
    if not value:
        return None
    path = Path(value)
    return path if (path / "sbin" / "asterisk").exists() else None


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# ----------------------------------------------------------------------------- Asterisk --

@dataclass
class Asterisk:
    prefix: Path
    home: Path
    sounds: Path
    sip_port: int = field(default_factory=free_udp_port)
    ami_port: int = field(default_factory=free_port)
    agi_port: int = field(default_factory=free_port)
    agent_ports: dict[str, int] = field(default_factory=lambda: {a: free_udp_port()
                                                                  for a in AGENTS})
    proc: subprocess.Popen | None = None
    log_offset: int = 0

    @property
    def conf(self) -> Path:
        return self.home / "etc" / "asterisk.conf"

    @property
    def messages(self) -> Path:
        return self.home / "log" / "messages.log"

    def write_config(self) -> None:
        etc = self.home / "etc"
        shutil.copytree(ROOT / "dialplans", etc / "ccengine")
        for name in ("extensions.conf", "queues.conf", "features.conf", "modules.conf"):
            shutil.copy(ROOT / "deploy" / "asterisk" / name, etc / name)
        # Where the engine listens: a later [globals] line wins (deploy/asterisk/extensions.conf).
        (etc / "ccengine_globals_local.conf").write_text(f"CCENGINE_AGI=127.0.0.1:{self.agi_port}\n")
        manager = (ROOT / "deploy" / "asterisk" / "manager.conf").read_text()
        manager = manager.replace("secret = CHANGE_ME_FROM_ENV", f"secret = {AMI_SECRET}")
        manager = re.sub(r"^port = 5038$", f"port = {self.ami_port}", manager, flags=re.M)
        manager += (f"\n[observer]\nsecret = {OBSERVER_SECRET}\ndeny = 0.0.0.0/0.0.0.0\n"
                    "permit = 127.0.0.1/255.255.255.255\nread = all\nwrite = system\n")
        (etc / "manager.conf").write_text(manager)
        (etc / "pjsip.conf").write_text(self._pjsip())
        moh = self.home / "moh"
        moh.mkdir()
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(moh / "tone.wav"),
                        "synth", "4", "sine", "440", "vol", "0.1"], check=True)
        (etc / "musiconhold.conf").write_text(f"[default]\nmode = files\ndirectory = {moh}\n")
        (etc / "rtp.conf").write_text(f"[general]\nrtpstart = {20000 + self.sip_port % 20000}\n"
                                      f"rtpend = {20200 + self.sip_port % 20000}\n")
        (etc / "logger.conf").write_text(
            "[general]\ndateformat = %F %T.%3q\n[logfiles]\n"
            "messages.log => notice,warning,error,verbose(3)\n")
        for name in ("cdr.conf", "cel.conf"):
            (etc / name).write_text("[general]\nenable = no\n")
        dirs = {"astetcdir": etc, "astmoddir": self.prefix / "lib" / "asterisk" / "modules",
                "astvarlibdir": self.home / "lib", "astdbdir": self.home / "lib",
                "astkeydir": self.home / "lib", "astdatadir": self.home / "data",
                "astagidir": self.home / "data" / "agi-bin",
                "astspooldir": self.home / "spool", "astrundir": self.home / "run",
                "astlogdir": self.home / "log", "astsbindir": self.prefix / "sbin"}
        for key in ("astvarlibdir", "astdatadir", "astspooldir", "astrundir", "astlogdir"):
            Path(dirs[key]).mkdir(parents=True, exist_ok=True)
        # The install's data (XML documentation, which Stasis needs to start, ...) with our
        # prompts as the sounds.
        for item in (self.prefix / "var" / "lib" / "asterisk").iterdir():
            if item.name != "sounds":
                (self.home / "data" / item.name).symlink_to(item)
        (self.home / "data" / "sounds").symlink_to(self.sounds)
        lines = ["[directories]"] + [f"{k} => {v}" for k, v in dirs.items()]
        lines += ["[options]", "verbose = 3", "nocolor = yes", "transmit_silence = yes"]
        self.conf.write_text("\n".join(lines) + "\n")

    def _pjsip(self) -> str:
        out = ["[global]", "type = global", "endpoint_identifier_order = username,ip", "",
               "[transport-udp]", "type = transport", "protocol = udp",
               f"bind = 127.0.0.1:{self.sip_port}", ""]
        common = ["transport = transport-udp", "disallow = all", "allow = ulaw",
                  "direct_media = no", "rtp_symmetric = yes", "dtmf_mode = info",
                  "send_connected_line = no", "timers = no"]
        out += ["[trunk]", "type = endpoint", "context = from-trunk", *common, "",
                "[trunk-identify]", "type = identify", "endpoint = trunk",
                "match = 127.0.0.1", ""]
        for agent, port in self.agent_ports.items():
            out += [f"[{agent}]", "type = endpoint", "context = agents", f"aors = {agent}",
                    f'callerid = "Agent {agent}" <{agent}>', *common, "",
                    f"[{agent}]", "type = aor", "max_contacts = 1",
                    f"contact = sip:{agent}@127.0.0.1:{port}", ""]
        return "\n".join(out)

    def start(self) -> None:
        log = open(self.home / "asterisk.out", "wb")
        self.proc = subprocess.Popen([str(self.prefix / "sbin" / "asterisk"), "-C", str(self.conf),
                                      "-f", "-n"], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: (self.home / "run" / "asterisk.ctl").exists() or self.proc.poll(),
                 30, "the Asterisk control socket")
        assert self.proc.poll() is None, (self.home / "asterisk.out").read_text()[-3000:]
        self.rx("core waitfullybooted")
        self.rx("agi set debug on")          # every AGI line in messages.log, both directions
        # Start-up complains about the optional configuration files a lab leaves out: only
        # what calls cause counts.
        self.log_offset = self.messages.stat().st_size if self.messages.exists() else 0

    def rx(self, command: str) -> str:
        done = subprocess.run([str(self.prefix / "sbin" / "asterisk"), "-C", str(self.conf),
                               "-rx", command], capture_output=True, text=True, timeout=60)
        return done.stdout

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.rx("core stop now")
            self.proc.wait(10)
        except (subprocess.TimeoutExpired, OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def warnings(self) -> list[str]:
        """Every WARNING and ERROR line Asterisk logged since it was fully booted."""
        if not self.messages.exists():
            return []
        with open(self.messages, "rb") as log:
            log.seek(self.log_offset)
            text = log.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if re.search(r"\] (WARNING|ERROR)\[", line)]


# --------------------------------------------------------------------------------- AMI ---

class AmiObserver:
    """An AMI client with read=all that keeps every event with its Timestamp."""

    def __init__(self, port: int, raw: Path):
        self.raw = open(raw, "wb")           # every byte received: a capture for tests/fixtures
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.events: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.sock.sendall(f"Action: Login\r\nUsername: observer\r\nSecret: {OBSERVER_SECRET}"
                          "\r\nEvents: on\r\n\r\n".encode())
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buffer = b""
        self.sock.settimeout(None)
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            self.raw.write(chunk)
            self.raw.flush()
            buffer += chunk
            while b"\r\n\r\n" in buffer:
                packet, buffer = buffer.split(b"\r\n\r\n", 1)
                message: dict[str, str] = {}
                for line in packet.decode("utf-8", "replace").split("\r\n"):
                    key, sep, value = line.partition(": ")
                    if sep and key not in message:
                        message[key] = value
                if "Event" in message:
                    with self.lock:
                        self.events.append(message)

    def find(self, event: str, **headers: str) -> list[dict[str, str]]:
        with self.lock:
            return [m for m in self.events if m.get("Event") == event
                    and all(m.get(k) == v for k, v in headers.items())]

    def wait(self, event: str, timeout: float = 30, **headers: str) -> dict[str, str]:
        return wait_for(lambda: (self.find(event, **headers) or [None])[0], timeout,
                        f"AMI {event} {headers}")

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        except OSError:
            pass
        self.thread.join(5)
        self.raw.close()


# ------------------------------------------------------------------------------ engine ---

@dataclass
class Engine:
    home: Path
    asterisk: Asterisk
    redis_url: str
    sounds: Path
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    # A second engine on the same Asterisk (ami.shared): its own FastAGI port and name.
    agi_port: int = 0                       # 0: the port the dialplan's CCENGINE_AGI names
    shared: bool = False
    name: str = ""

    @property
    def config(self) -> Path:
        return self.home / "ccengine.toml"

    def write_config(self) -> None:
        all_day = 'open = "00:00"\nclose = "23:59"\n'
        queues = "".join(f"[queues.{q}]\n{all_day}" for q in
                         ("inbound", "complaint", "outbound", "supervisor"))
        self.config.write_text(
            f'[engine]\nstate_dir = "{self.home / "state"}"\nid = "{self.name}"\n'
            f'[fastagi]\nport = {self.agi_port or self.asterisk.agi_port}\n'
            f'[http]\nport = {self.http_port}\n'
            f'[ami]\nport = {self.asterisk.ami_port}\nreconnect_max = 2.0\n'
            f'shared = {"true" if self.shared else "false"}\n'
            f'[redis]\nurl = "{self.redis_url}"\n' + queues)

    def cli(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(ENGINE), *args, "--config", str(self.config)], input=input,
                              capture_output=True, text=True, timeout=300, check=check)

    def start(self) -> None:
        env = dict(os.environ, CCENGINE_AMI_SECRET=AMI_SECRET)
        log = open(self.home / "engine.log", "wb")
        self.proc = subprocess.Popen([str(ENGINE), "run", "--config", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.health().get("ami_connected") or self.proc.poll() is not None,
                 30, "the engine's AMI login")
        assert self.proc.poll() is None, self.log()[-3000:]

    def health(self) -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz",
                                        timeout=2) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as err:
            return json.loads(err.read())
        except OSError:
            return {}

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics",
                                    timeout=5) as reply:
            return reply.read().decode()

    def metric(self, name: str, **labels: str) -> float | None:
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            series, _, value = line.rpartition(" ")
            if series == (f"{name}{{{want}}}" if want else name):
                return float(value)
        return None

    def log(self) -> str:
        path = self.home / "engine.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


# -------------------------------------------------------------------------------- SIPp ---

SDP = """v=0
o=lab 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""


def _request(method: str, uri: str, cseq: int, user: str, to: str, body: str = "",
             content_type: str = "application/sdp", dialog: bool = True) -> str:
    lines = [f"{method} {uri} SIP/2.0",
             "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
             f"From: <sip:{user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]",
             f"To: <sip:{to}@[remote_ip]:[remote_port]>" + ("[peer_tag_param]" if dialog else ""),
             "Call-ID: [call_id]", f"CSeq: {cseq} {method}",
             f"Contact: <sip:{user}@[local_ip]:[local_port]>", "Max-Forwards: 70"]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append("Content-Length: [len]")
    return "\n".join(lines) + "\n\n" + body


def caller_scenario(user: str, dialled: str, steps: list[tuple[str, object]],
                    far_end_hangs_up: bool = False) -> str:
    """A SIPp UAC: INVITE `dialled` from `user`, then `steps`: ("wait", ms) or ("key", digit)
    (SIP INFO application/dtmf-relay), then BYE, or wait for Asterisk's BYE."""
    xml = ['<?xml version="1.0" encoding="ISO-8859-1" ?>', '<scenario name="lab caller">',
           '<send retrans="500"><![CDATA[',
           _request("INVITE", f"sip:{dialled}@[remote_ip]:[remote_port]", 1, user, dialled,
                    SDP, dialog=False),
           "]]></send>",
           '<recv response="100" optional="true"/>', '<recv response="180" optional="true"/>',
           '<recv response="183" optional="true"/>', '<recv response="200" rtd="true" rrs="true"/>',
           "<send><![CDATA[",
           _request("ACK", "[next_url]", 1, user, dialled).replace("Content-Length: [len]",
                                                                     "Content-Length: 0"),
           "]]></send>"]
    cseq = 2
    for kind, value in steps:
        if kind == "wait":
            xml.append(f'<pause milliseconds="{int(value)}"/>')
        else:
            body = f"Signal={value}\nDuration=160\n"
            xml += ["<send><![CDATA[",
                    _request("INFO", "[next_url]", cseq, user, dialled, body,
                             "application/dtmf-relay"), "]]></send>",
                    '<recv response="200"/>']
            cseq += 1
    if far_end_hangs_up:
        xml += ['<recv request="BYE"/>', "<send><![CDATA[", _response("200 OK"), "]]></send>"]
    else:
        xml += ['<send retrans="500"><![CDATA[',
                _request("BYE", "[next_url]", cseq, user, dialled).replace(
                    "Content-Length: [len]", "Content-Length: 0"),
                "]]></send>", '<recv response="200" crlf="true"/>']
    xml.append("</scenario>")
    return "\n".join(xml)


def _response(status: str, dialog_tag: bool = False, sdp: bool = False) -> str:
    """A SIPp reply to the last request: its Via/From/To/Call-ID/CSeq echoed; `dialog_tag` adds
    our To tag (the answer that opens the dialog), `sdp` the offer's answer."""
    to = "[last_To:];tag=[pid]SIPpTag[call_number]" if dialog_tag else "[last_To:]"
    lines = [f"SIP/2.0 {status}", "[last_Via:]", "[last_From:]", to, "[last_Call-ID:]",
             "[last_CSeq:]"]
    if dialog_tag:
        lines.append("Contact: <sip:[local_ip]:[local_port]>")
    if sdp:
        lines += ["Content-Type: application/sdp", "Content-Length: [len]", "", SDP]
    else:
        lines += ["Content-Length: 0", "", ""]
    return "\n".join(lines)


def agent_phone_scenario(ring_ms: int, talk: Path | None = None) -> str:
    """A SIPp UAS: rings, answers after `ring_ms` (a number in the scenario: SIPp's -key does
    not reach a pause attribute), talks until Asterisk's BYE. With `talk` (raw 8 kHz mu-law
    audio) it sends that audio as RTP once answered (SIPp's rtp_stream, payload type 0);
    without it the phone sends no media at all."""
    speak = ([f'<nop><action><exec rtp_stream="{talk},-1,0"/></action></nop>']
             if talk is not None else [])
    # SIPp refuses an optional <recv> right before a <nop>: with audio, the ACK is awaited.
    ack = '<recv request="ACK" rtd="true" crlf="true"/>' if talk is not None else \
        '<recv request="ACK" optional="true" rtd="true" crlf="true"/>'
    return "\n".join([
        '<?xml version="1.0" encoding="ISO-8859-1" ?>',
        f'<scenario name="lab agent phone: rings, answers after {ring_ms} ms, talks until BYE">',
        '<recv request="INVITE" crlf="true"/>',
        f"<send><![CDATA[\n{_response('180 Ringing', dialog_tag=True)}]]></send>",
        f'<pause milliseconds="{ring_ms}"/>',
        f'<send retrans="500"><![CDATA[\n{_response("200 OK", dialog_tag=True, sdp=True)}'
        "]]></send>",
        ack, *speak,
        '<recv request="BYE"/>',
        f"<send><![CDATA[\n{_response('200 OK')}]]></send>",
        "</scenario>", ""])


@dataclass
class Sipp:
    home: Path
    asterisk: Asterisk
    procs: list[subprocess.Popen] = field(default_factory=list)

    def _run(self, name: str, scenario: str, port: int, *extra: str) -> subprocess.Popen:
        path = self.home / f"{name}.xml"
        path.write_text(scenario)
        out = open(self.home / f"{name}.out", "wb")
        proc = subprocess.Popen(["sipp", "-sf", str(path), f"127.0.0.1:{self.asterisk.sip_port}",
                                 "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_udp_port()),
                                 "-nostdin", "-aa", "-trace_err", "-trace_msg",
                                 "-error_file", str(self.home / f"{name}.errors"), *extra],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.home, start_new_session=True)
        self.procs.append(proc)
        return proc

    def call(self, name: str, number: str, steps, far_end_hangs_up=False,
             dialled: str = "4000") -> subprocess.Popen:
        return self._run(name, caller_scenario(number, dialled, steps, far_end_hangs_up),
                         free_udp_port(), "-m", "1", "-timeout", "200s")

    def agent_phone(self, agent: str, ring_ms: int = 1000,
                    talk: Path | None = None) -> subprocess.Popen:
        return self._run(f"phone-{agent}", agent_phone_scenario(ring_ms, talk),
                         self.asterisk.agent_ports[agent])

    def feature_code(self, name: str, agent: str, code: str, steps) -> subprocess.Popen:
        """The agent's phone dials a feature code (*71 ...) and keys in `steps`."""
        return self._run(name, caller_scenario(agent, code, steps), free_udp_port(),
                         "-m", "1", "-timeout", "120s")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def finished(proc: subprocess.Popen, timeout: float) -> int:
    """SIPp's exit code (0: every call of the scenario succeeded)."""
    return proc.wait(timeout)


def keys(text: str, gap_ms: int = 700) -> list[tuple[str, object]]:
    """Digits keyed one by one, `gap_ms` apart (an AGI drops DTMF that arrives between two
    commands, so a human pace is kept)."""
    out: list[tuple[str, object]] = []
    for digit in text:
        out += [("key", digit), ("wait", gap_ms)]
    return out
