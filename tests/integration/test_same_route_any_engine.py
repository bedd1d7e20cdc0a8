"""Any engine gives a caller the same route (issue 23): two `ccengine run` processes on one
Redis, one set of caller lists; the same callers (a VIP, a blocked number, an unknown one)
dial the hotline on each, answered as Asterisk 22 answers a live channel with no key pressed
(tests/agi_harness.py default_reply). What each engine tells the dialplan (every SET
VARIABLE but the call id) is the same."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from agi_harness import default_reply, environment_block
from asterisk_lab import wait_for
from ccengine.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
# Open around the clock, so that the time of the run does not decide the route.
ALL_DAY = "".join(f'[queues.{q}]\nopen = "00:00"\nclose = "23:59"\n'
                  for q in ("inbound", "complaint", "outbound", "supervisor"))
CALLERS = {"vip": "13900000001", "blocked": "13900000002", "unknown": "13900000003"}


def hotline(port: int, number: str, uniqueid: str) -> list[str]:
    """One hotline session; the SET VARIABLE commands the engine sent, in order."""
    sent: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(environment_block("hotline", callerid=number, uniqueid=uniqueid))
        buffer = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return sent
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.startswith(b"SET VARIABLE"):
                    sent.append(line.decode())
                conn.sendall(default_reply(line))


def up(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_the_same_caller_gets_the_same_route_from_either_engine(tmp_path, redis_url):
    (tmp_path / "vip.csv").write_text(f"{CALLERS['vip']},Ms Vip\n", encoding="utf-8")
    (tmp_path / "blocked.txt").write_text(f"{CALLERS['blocked']}\n", encoding="utf-8")
    engines = []
    try:
        for name in ("a", "b"):
            agi, http = free_port(), free_port()
            config = tmp_path / f"{name}.toml"
            config.write_text(
                f'[engine]\nid = "{name}"\nstate_dir = "{tmp_path / name}"\n'
                f'[redis]\nurl = "{redis_url}"\n[http]\nport = {http}\n'
                f'[fastagi]\nport = {agi}\n[ami]\nenabled = false\n'
                f'[callers]\nvip_file = "{tmp_path / "vip.csv"}"\n'
                f'blocklist_file = "{tmp_path / "blocked.txt"}"\n' + ALL_DAY, encoding="utf-8")
            process = subprocess.Popen(
                [sys.executable, "-m", "ccengine.cli", "run", "--config", str(config)],
                cwd=tmp_path, stdout=(tmp_path / f"{name}.log").open("w"),
                stderr=subprocess.STDOUT, env=dict(os.environ))
            engines.append((process, agi, http))
            wait_for(lambda http=http: up(http), 30, f"engine {name}")
        routes = {}
        for kind, number in CALLERS.items():
            routes[kind] = [
                [v for v in hotline(agi, number, f"17962000{i}.{len(routes)}")
                 if "CC_CALL_ID" not in v]
                for i, (_, agi, _) in enumerate(engines)]
        for kind, (on_a, on_b) in routes.items():
            assert on_a == on_b, kind
            assert 'SET VARIABLE CC_ROUTE_OK "1"' in on_a, kind
        # The three callers were told different things (the lists were read by both).
        assert len({tuple(r[0]) for r in routes.values()}) == 3
        print("\n" + "\n".join(f"{kind}: {' | '.join(r[0])}" for kind, r in routes.items()))
    finally:
        for process, _, _ in engines:
            process.terminate()
            process.wait(20)
