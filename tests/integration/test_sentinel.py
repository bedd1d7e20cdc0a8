"""Redis Sentinel (issue 23, first part): a real master, two replicas and three sentinels
(Debian's redis-server and redis-sentinel) on loopback. The engine's store layer is connected
through the sentinels with redis.min_replicas_ack = 1; the three kinds of write a caller or an
agent is told were stored (callback requests, complaint tickets, agent logins) stream in; the
master is killed with SIGKILL. The connection finds the new master by itself, and every write
that was acknowledged is on it. (Two replicas: after the failover one remains to confirm writes;
with a single replica, min_replicas_ack = 1 rightly refuses every write once it is master.)"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.task import deferLater

from ccengine.agents.directory import AgentDirectory, AgentSession
from ccengine.complaints.store import TicketStore
from ccengine.config import parse_config
from ccengine.store import keys
from ccengine.store.base import RedisConnection, StoreUnavailable
from ccengine.store.embedded import free_port, redis_answers
from ccengine.waiting.callbacks import CallbackStore
from asterisk_lab import wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-sentinel") is None,
                                reason="Debian redis-sentinel not installed "
                                       "(scripts/install.sh installs it)")
SERVICE = "ccmaster"


def start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT)



class SentinelLab:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.master_port = free_port()
        self.replica_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        replicas = [(f"replica{n}", port, ["--replicaof", "127.0.0.1", str(self.master_port)])
                    for n, port in enumerate(self.replica_ports)]
        for name, port, extra in [("master", self.master_port, []), *replicas]:
            data = tmp / name
            data.mkdir()
            proc = start(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--dir", str(data), "--appendonly", "yes", "--save", "", *extra],
                         tmp / f"{name}.log")
            self.procs.append(proc)
            if name == "master":
                self.master = proc
            wait_for(lambda p=port: redis_answers("127.0.0.1", p), 10, f"{name} up")
        for port in self.sentinel_ports:
            conf = tmp / f"sentinel-{port}.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\n"
                            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                            f"sentinel failover-timeout {SERVICE} 5000\n"
                            f"sentinel parallel-syncs {SERVICE} 1\n")
            self.procs.append(start(["redis-sentinel", str(conf)], tmp / f"sentinel-{port}.log"))
        for port in self.replica_ports:
            r = redis.Redis(port=port)
            wait_for(lambda r=r: r.info("replication").get("master_link_status") == "up", 15,
                       "the replicas in sync")
            r.close()

    def master_address(self) -> tuple[str, int]:
        s = redis.Redis(port=self.sentinel_ports[0], decode_responses=True)
        host, port = s.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
        s.close()
        return host, int(port)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


@pytest_twisted.ensureDeferred
async def test_acknowledged_writes_survive_a_master_killed_with_sigkill(tmp_path):
    lab = SentinelLab(tmp_path)
    try:
        config = parse_config({"redis": {
            "sentinels": [f"127.0.0.1:{p}" for p in lab.sentinel_ports], "service": SERVICE,
            "timeout": 1.0, "min_replicas_ack": 1, "replica_ack_timeout_ms": 300}})
        conn = RedisConnection.from_config(config.redis, "")
        callbacks = CallbackStore(conn, ["inbound"], 48)
        tickets = TicketStore(conn, config.complaints.deadline_hours)
        agents = AgentDirectory(conn)

        async def write(i: int) -> tuple[str, str]:
            """One acknowledged write of the i-th kind: (kind, the key that must then exist)."""
            number = f"1380{i:07d}"
            if i % 3 == 0:
                await callbacks.request(number, "inbound", "zh", f"sentinel-{i}", 0, 1.0, 2.0)
                return "callbacks", f"cc:callback:open:{number}"
            if i % 3 == 1:
                ticket = await tickets.open(time.time(), number=number, queue="complaint")
                return "tickets", keys.complaint(ticket.id)
            agent = f"{7000 + i}"
            outcome = await agents.claim(AgentSession(agent, f"p{agent}", f"PJSIP/p{agent}",
                                                      time.time(), {"inbound": 0}))
            assert outcome == "ok", outcome
            return "logins", keys.agent_session(agent)

        acknowledged: list[tuple[str, str]] = []
        refused, killed_at = 0, None
        start_time = time.monotonic()
        i = 0
        while time.monotonic() - start_time < 40:
            try:
                acknowledged.append(await write(i))
            except StoreUnavailable:
                refused += 1
                await deferLater(reactor, 0.2, lambda: None)
            i += 1
            if killed_at is None and len(acknowledged) >= 30:
                lab.master.kill()                       # SIGKILL, mid-stream
                killed_at = len(acknowledged)
            if killed_at is not None and len(acknowledged) >= killed_at + 30:
                break
        assert killed_at is not None and len(acknowledged) >= killed_at + 30, \
            f"no recovery: {len(acknowledged)} acknowledged, {refused} refused"
        host, port = lab.master_address()
        assert port in lab.replica_ports                # a replica was promoted
        new_master = redis.Redis(host=host, port=port, decode_responses=True)
        missing = [key for _, key in acknowledged if not new_master.exists(key)]
        new_master.close()
        kinds = {kind: sum(1 for k, _ in acknowledged if k == kind)
                 for kind in ("callbacks", "tickets", "logins")}
        print(f"\nsentinel: {len(acknowledged)} acknowledged {kinds} ({killed_at} before the "
              f"kill), {refused} refused during the failover, {len(missing)} lost")
        assert missing == []
        assert min(kinds.values()) >= 10                # every kind went through the failover
        await conn.close()
    finally:
        lab.stop()


def test_the_engines_health_follows_a_failover(tmp_path):
    """A `ccengine run` process on the sentinels: /healthz names the master Sentinel gave it;
    the master is killed with SIGKILL while callers dial the hotline one after another; the
    engine finds the promoted replica by itself, says so in /healthz (`redis_master`, redis
    reachable again) and counts the change in ccengine_redis_master_changes_total; every
    caller, before, during and after the failover, was routed (CC_ROUTE_OK; during the failover
    the route is the one taken with Redis down, docs/reliability.md). No AMI here
    (ami.enabled = false)."""
    import json
    import os
    import sys
    import threading
    import urllib.error
    import urllib.request

    from test_same_route_any_engine import hotline

    lab = SentinelLab(tmp_path)
    http, agi = free_port(), free_port()
    config = tmp_path / "engine.toml"
    sentinels = ", ".join(f'"127.0.0.1:{p}"' for p in lab.sentinel_ports)
    config.write_text(
        f'[engine]\nstate_dir = "{tmp_path / "state"}"\n[http]\nport = {http}\n'
        f'[fastagi]\nport = {agi}\n[ami]\nenabled = false\n'
        f'[redis]\nsentinels = [{sentinels}]\nservice = "{SERVICE}"\ntimeout = 1.0\n',
        encoding="utf-8")
    engine = subprocess.Popen([sys.executable, "-m", "ccengine.cli", "run", "--config",
                               str(config)], cwd=tmp_path, env=dict(os.environ),
                              stdout=(tmp_path / "engine.log").open("w"),
                              stderr=subprocess.STDOUT)

    def health() -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:          # 503: degraded, same JSON body
            return json.loads(exc.read())
        except OSError:
            return {}

    def changes() -> float | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("ccengine_redis_master_changes_total "):
                    return float(line.split()[1])
        return None

    stop = threading.Event()
    try:
        first = f"127.0.0.1:{lab.master_port}"
        wait_for(lambda: health().get("redis_master") == first, 20, "the engine on the master")
        assert health()["status"] == "ok" and changes() == 0
        calls: list[bool] = []                         # routed or not, one per call

        def callers() -> None:
            n = 0
            while not stop.is_set():
                sent = hotline(agi, f"1390{n:07d}", f"1796300{n}.1")
                calls.append('SET VARIABLE CC_ROUTE_OK "1"' in sent)
                n += 1

        dialling = threading.Thread(target=callers, daemon=True)
        dialling.start()
        wait_for(lambda: len(calls) >= 5, 20, "callers routed before the kill")
        before = len(calls)
        lab.master.kill()
        seen = set()

        def moved() -> bool:
            report = health()
            seen.add(report.get("status"))
            return report.get("redis_master") not in (None, first) and \
                report.get("redis_reachable") is True
        wait_for(moved, 40, "the engine on the new master")
        during = len(calls) - before
        after = len(calls)
        wait_for(lambda: len(calls) >= after + 5, 20, "callers routed after the failover")
        stop.set()
        dialling.join(30)
        assert all(calls), f"{calls.count(False)} of {len(calls)} callers not routed"
        host, port = lab.master_address()
        report = health()
        assert report["redis_master"] == f"{host}:{port}" and port in lab.replica_ports
        assert changes() == 1
        assert engine.poll() is None                   # it never stopped
        print(f"\nengine health during the failover: statuses seen {sorted(seen)}, master "
              f"{first} -> {report['redis_master']}; callers routed: {before} before the "
              f"kill, {during} during the failover, {len(calls)} in all")
    finally:
        stop.set()
        engine.terminate()
        engine.wait(20)
        lab.stop()
