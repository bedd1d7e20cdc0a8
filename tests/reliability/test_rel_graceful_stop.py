"""issue 19 point 6: SIGTERM is graceful. A real `ccengine run` process, 50 FastAGI sessions
of the hotline held in their greeting (the STREAM FILE not answered yet, as while a prompt
plays); SIGTERM; then the greetings end. Every caller gets the default route acknowledged
(CC_QUEUE + CC_ROUTE_OK=1), the engine exits 0 within fastagi.stop_grace, no traceback.

Replies are those of the AGI captures (tests/fixtures/agi, copied from transcripts2):
`200 result=1` to SET VARIABLE, `200 result=0 endpos=N` to a STREAM FILE that played through.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

from agi_harness import environment_block
from ccengine.store.embedded import free_port

SESSIONS = 50


class Caller(threading.Thread):
    """Asterisk's side of one FastAGI session: holds the first STREAM FILE until `release`."""

    def __init__(self, port: int, index: int, release: threading.Event):
        super().__init__(daemon=True)
        self.port, self.index, self.release = port, index, release
        self.holding = threading.Event()
        self.variables: dict[str, str] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=30) as conn:
                conn.sendall(environment_block("hotline", uniqueid=f"stop-{self.index}",
                                               callerid=f"138000{self.index:05d}"))
                reader = conn.makefile("rb")
                held = False
                for raw in reader:
                    line = raw.decode().strip()
                    if line.startswith("SET VARIABLE"):
                        _, _, name, value = line.split(" ", 3)
                        self.variables[name] = value.strip('"')
                        conn.sendall(b"200 result=1\n")
                    elif line.startswith("STREAM FILE") and not held:
                        held = True
                        self.holding.set()
                        self.release.wait(60)
                        conn.sendall(b"200 result=0 endpos=16000\n")
                    else:
                        conn.sendall(b"200 result=0 endpos=8000\n")
        except BaseException as exc:       # reported by the test
            self.error = exc


def test_sigterm_gives_every_caller_in_the_ivr_the_default_route(tmp_path, redis_url):
    agi, http = free_port(), free_port()
    config = tmp_path / "c.toml"
    config.write_text(f'[redis]\nurl = "{redis_url}"\n[http]\nport = {http}\n'
                      f'[fastagi]\nport = {agi}\nmax_silence = 30.0\n[ami]\nenabled = false\n',
                      encoding="utf-8")
    log = tmp_path / "engine.log"
    engine = subprocess.Popen([sys.executable, "-m", "ccengine.cli", "run", "--config",
                               str(config)], cwd=tmp_path, stdout=log.open("w"),
                              stderr=subprocess.STDOUT)
    release = threading.Event()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", agi), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and engine.poll() is None, log.read_text()
                time.sleep(0.2)
        callers = [Caller(agi, i, release) for i in range(SESSIONS)]
        for caller in callers:
            caller.start()
        for caller in callers:
            assert caller.holding.wait(20), "a session did not reach its greeting"
        engine.send_signal(signal.SIGTERM)
        time.sleep(0.5)              # the engine has stopped listening; the prompts end now
        release.set()
        code = engine.wait(20)
    finally:
        release.set()
        if engine.poll() is None:
            engine.kill()
    for caller in callers:
        caller.join(10)
    assert [c.error for c in callers if c.error] == []
    routed = [c for c in callers if c.variables.get("CC_ROUTE_OK") == "1"]
    assert len(routed) == SESSIONS
    assert {c.variables["CC_QUEUE"] for c in routed} == {"inbound"}   # ivr.default_queue
    text = log.read_text()
    assert code == 0 and "Traceback" not in text
