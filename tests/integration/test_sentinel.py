"""Redis Sentinel (issue 23, first part): a real master, two replicas and three sentinels
(Debian's redis-server and redis-sentinel) on loopback. The engine's store layer is connected
through the sentinels with redis.min_replicas_ack = 1; callback requests stream in; the master
is killed with SIGKILL. The connection finds the new master by itself, and every callback that
was acknowledged is on it. (Two replicas: after the failover one remains to confirm writes;
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

from ccengine.config import parse_config
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
async def test_acknowledged_callbacks_survive_a_master_killed_with_sigkill(tmp_path):
    lab = SentinelLab(tmp_path)
    try:
        config = parse_config({"redis": {
            "sentinels": [f"127.0.0.1:{p}" for p in lab.sentinel_ports], "service": SERVICE,
            "timeout": 1.0, "min_replicas_ack": 1, "replica_ack_timeout_ms": 300}})
        conn = RedisConnection.from_config(config.redis, "")
        store = CallbackStore(conn, ["inbound"], 48)
        acknowledged, refused, killed_at = [], 0, None
        start_time = time.monotonic()
        i = 0
        while time.monotonic() - start_time < 40:
            number = f"1380{i:07d}"
            try:
                await store.request(number, "inbound", "zh", f"sentinel-{i}", 0, 1.0, 2.0)
                acknowledged.append(number)
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
        missing = [n for n in acknowledged if not new_master.exists(f"cc:callback:open:{n}")]
        new_master.close()
        print(f"\nsentinel: {len(acknowledged)} acknowledged ({killed_at} before the kill), "
              f"{refused} refused during the failover, 0 lost")
        assert missing == []
        await conn.close()
    finally:
        lab.stop()
