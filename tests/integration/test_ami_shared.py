"""Several engines on one Redis and two Asterisk servers (ami.shared = true, issue 23).

Three `ccengine run` processes, each configured with the same two servers (`[[ami.servers]]`
pbx-a and pbx-b), against two AMI servers answering with recorded Asterisk messages
(tests/ami_server.py). The events streamed are the queue events of 120 real calls on
Asterisk 22.10.1 (tests/fixtures/ami/load_2cps_queue_events.raw, copied unchanged from
transcripts3/load_2cps_ami: every call QueueCallerJoin, AgentCalled, QueueCallerLeave,
AgentConnect, AgentComplete). Every engine receives every event (its picture stays live), and
exactly one counts each server's: the queue counters summed across engines equal the calls
replayed, before and after the owner of pbx-a is killed with SIGKILL. The jobs run on one
engine: each overdue ticket escalates once (the deadline sweeper), each survey job is dialled
once (the outbound dialler).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest_twisted

from ccengine.ami.wire import Message
from ccengine.store.embedded import free_port
from asterisk_lab import wait_for

ROOT = Path(__file__).resolve().parents[2]
CALLS = ROOT / "tests" / "fixtures" / "ami" / "load_2cps_queue_events.raw"
SERVERS = ("pbx-a", "pbx-b")


def scrape(port: int) -> dict[str, float]:
    """Every sample of an engine's /metrics, by its full series text; {} when it is down."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def actions(log: Path) -> list[dict]:
    return [dict(json.loads(line)) for line in log.read_text().splitlines()]


def calls() -> list[list[list[str]]]:
    """The capture's events grouped by call (caller Uniqueid), in the recorded order."""
    by_call: dict[str, list] = {}
    for block in CALLS.read_bytes().split(b"\r\n\r\n"):
        if block.strip():
            message = Message.parse(block)
            by_call.setdefault(message["Uniqueid"], []).append([list(p) for p in message.items()])
    return list(by_call.values())


class Pbx:
    """One simulated Asterisk: tests/ami_server.py with its action log."""

    def __init__(self, tmp_path: Path, name: str):
        self.log = tmp_path / f"{name}-actions.jsonl"
        self.log.write_text("")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "ami_server.py"), "--log", str(self.log)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline().split()[1])

    def stream(self, events: list) -> None:
        self.process.stdin.write(json.dumps(events) + "\n")
        self.process.stdin.flush()

    def sent(self, action: str) -> list[dict]:
        return [a for a in actions(self.log) if a.get("Action") == action]

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.terminate()
        self.process.wait(10)


def engine_config(tmp_path: Path, name: str, redis_url: str, pbxs: dict[str, Pbx],
                  http: int) -> Path:
    config = tmp_path / f"{name}.toml"
    servers = "".join(
        f'[[ami.servers]]\nname = "{server}"\nport = {pbx.port}\n'
        f'phones = ["{2000 + 1000 * i}-{2999 + 1000 * i}"]\n'
        for i, (server, pbx) in enumerate(pbxs.items()))
    config.write_text(
        f'[engine]\nid = "{name}"\nstate_dir = "{tmp_path / name}"\n'
        f'[redis]\nurl = "{redis_url}"\n[http]\nport = {http}\n'
        f'[fastagi]\nport = {free_port()}\n'
        f'[complaints]\nsweep_interval = 0.5\n'
        f'[outbound]\nwindow_start = "00:00"\nwindow_end = "23:59"\npoll_interval = 0.5\n'
        f'days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
        f'per_number_interval_minutes = 0\n'
        f'[ami]\nshared = true\nreconnect_max = 1.0\n{servers}', encoding="utf-8")
    return config


def total(engines: dict, series: str, last: dict[str, dict]) -> float:
    """`series` summed over the engines, a dead one by its last scrape (as Prometheus keeps
    the last value it scraped)."""
    out = 0.0
    for name, (_, http) in engines.items():
        samples = scrape(http) or last.get(name, {})
        if samples:
            last[name] = samples
        out += samples.get(series, 0.0)
    return out


def owners(engines: dict, series: str) -> list[str]:
    return [name for name, (process, http) in engines.items()
            if process.poll() is None and scrape(http).get(series) == 1]


@pytest_twisted.ensureDeferred
async def test_each_server_is_counted_once_across_engines_and_survives_a_kill(tmp_path,
                                                                            redis_url):
    from prometheus_client import CollectorRegistry
    from ccengine.complaints.metrics import ComplaintMetrics
    from ccengine.complaints.service import Complaints
    from ccengine.complaints.store import TicketStore
    from ccengine.config import load_config
    from ccengine.store.base import RedisConnection

    pbxs = {server: Pbx(tmp_path, server) for server in SERVERS}
    engines: dict[str, tuple[subprocess.Popen, int]] = {}
    last: dict[str, dict] = {}
    def offered(server):
        return f'ccengine_queue_offered_total{{queue="inbound",server="{server}"}}'

    def answered(server):
        return f'ccengine_queue_answered_total{{queue="inbound",server="{server}"}}'

    def counted() -> tuple:
        """(offered, answered) per server, summed over the engines."""
        return tuple((total(engines, offered(s), last), total(engines, answered(s), last))
                     for s in SERVERS)
    try:
        for name in ("e1", "e2", "e3"):
            http = free_port()
            config = engine_config(tmp_path, name, redis_url, pbxs, http)
            engines[name] = (subprocess.Popen(
                [sys.executable, "-m", "ccengine.cli", "run", "--config", str(config)],
                cwd=tmp_path, stdout=(tmp_path / f"{name}.log").open("w"),
                stderr=subprocess.STDOUT, env={**os.environ, "CCENGINE_AMI_SECRET": "x"}), http)
        for pbx in pbxs.values():
            wait_for(lambda pbx=pbx: len(pbx.sent("Login")) == 3, 30, "three AMI logins")
        for server in SERVERS:
            wait_for(lambda server=server: len(owners(
                engines, f'ccengine_ami_owner{{server="{server}"}}')) == 1, 15,
                f"an owner of {server}")
        wait_for(lambda: len(owners(engines, "ccengine_jobs_owner")) == 1, 15, "a jobs owner")
        time.sleep(2.5)                       # two more renewals: still one owner each
        for server in SERVERS:
            assert len(owners(engines, f'ccengine_ami_owner{{server="{server}"}}')) == 1
        assert len(owners(engines, "ccengine_jobs_owner")) == 1

        # 80 calls: 40 on each server. Every engine receives every event; the totals count
        # each call once.
        recorded = calls()
        assert len(recorded) == 120
        pbxs["pbx-a"].stream([e for call in recorded[:40] for e in call])
        pbxs["pbx-b"].stream([e for call in recorded[40:80] for e in call])
        wait_for(lambda: counted() == ((40, 40), (40, 40)), 15, "80 calls counted")
        for name, (_, http) in engines.items():
            samples = scrape(http)
            assert [samples.get(f'ccengine_ami_events_total{{server="{s}"}}') for s in SERVERS] \
                == [200.0, 200.0], name
        time.sleep(1.5)
        assert counted() == ((40, 40), (40, 40))

        # SIGKILL the owner of pbx-a: another engine takes its events over.
        victim = owners(engines, 'ccengine_ami_owner{server="pbx-a"}')[0]
        counted()                                     # the victim's last scrape
        queuestatus_before = len(pbxs["pbx-a"].sent("QueueStatus"))
        killed = time.monotonic()
        engines[victim][0].send_signal(signal.SIGKILL)
        engines[victim][0].wait(10)
        wait_for(lambda: len(owners(engines, 'ccengine_ami_owner{server="pbx-a"}')) == 1, 10,
                 "a takeover of pbx-a")
        # Printed, not asserted (no timing assertions in the suite); the bound is about
        # owner.LEASE_MS + owner.RENEW.
        print(f"\npbx-a: owner {victim} killed, taken over after "
              f"{time.monotonic() - killed:.1f} s")
        # The new owner resynced pbx-a from QueueStatus for its consumers.
        wait_for(lambda: len(pbxs["pbx-a"].sent("QueueStatus")) > queuestatus_before, 5,
                 "a QueueStatus after the takeover")
        pbxs["pbx-a"].stream([e for call in recorded[80:] for e in call])
        wait_for(lambda: counted() == ((80, 80), (40, 40)), 15, "120 calls counted")
        time.sleep(1.5)
        assert counted() == ((80, 80), (40, 40))
        wait_for(lambda: len(owners(engines, "ccengine_jobs_owner")) == 1, 10, "a jobs owner")

        # The jobs: 5 tickets already past their agent deadline; whichever engine holds the
        # jobs lease escalates each once (history and one UserEvent per ticket).
        hours = dict(load_config(None).complaints.deadline_hours)

        class Past:
            def seconds(self):
                return time.time() - (hours["agent"] + 1) * 3600

        conn = RedisConnection(redis_url)
        complaints = Complaints(TicketStore(conn, hours), ComplaintMetrics(CollectorRegistry()),
                                Past(), hours)
        tickets = [(await complaints.open(number="13800000001", agent="2001")).id
                   for _ in range(5)]
        await conn.close()

        def escalated() -> list[str]:
            return [a["Ticket"] for pbx in pbxs.values() for a in pbx.sent("UserEvent")]
        wait_for(lambda: sorted(escalated()) == sorted(tickets), 15, "5 escalations")

        # And the dialler: 5 survey jobs (no agent needed), each dialled once, by one engine
        # (Originate on the first server; ami5_originate's answer: queued).
        numbers = [f"1380000010{n}" for n in range(5)]
        campaign = tmp_path / "survey.csv"
        campaign.write_text("number\n" + "".join(f"{n}\n" for n in numbers), encoding="utf-8")
        loaded = subprocess.run(
            [sys.executable, "-m", "ccengine.cli", "outbound", "load", str(campaign),
             "--config", str(tmp_path / "e1.toml")], cwd=tmp_path, capture_output=True,
            text=True, timeout=60)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr

        def dialled() -> list[str]:
            return [n for pbx in pbxs.values() for a in pbx.sent("Originate")
                    for n in numbers if f"Local/{n}@" in a.get("Channel", "")]
        wait_for(lambda: sorted(dialled()) == numbers, 15, "5 surveys dialled")
        time.sleep(1.5)                               # three more rounds of every engine
        assert sorted(escalated()) == sorted(tickets)
        assert sorted(dialled()) == numbers
        assert pbxs["pbx-b"].sent("Originate") == []
    finally:
        for process, _ in engines.values():
            if process.poll() is None:
                process.terminate()
                process.wait(20)
        for pbx in pbxs.values():
            pbx.stop()


@pytest_twisted.ensureDeferred
async def test_leases_one_holder_each_and_a_takeover_with_a_higher_token(redis_url):
    """Two engines' leases on one Redis: the first to check takes a server's events lease
    (fencing token 1) and resyncs that server; the second stays without; when the first loses
    its AMI link it lets the lease go, which then expires, and the second takes it with token
    2. The jobs lease starts its singletons on its holder only."""
    from prometheus_client import CollectorRegistry
    from twisted.application.service import Service
    from twisted.internet import reactor
    from twisted.internet.defer import succeed
    from twisted.internet.task import deferLater
    from ccengine.ami.owner import LEASE_MS, AmiOwnership, SingletonLease, owner_gauge
    from ccengine.store.base import RedisConnection

    class Client:
        connected = True
        name = "pbx-a"

    class Feed:
        def __init__(self):
            self.resyncs = []

        def resync(self, server):
            self.resyncs.append(server)
            return succeed(None)

    def engine(name):
        client, feed, registry = Client(), Feed(), CollectorRegistry()
        conn = RedisConnection(redis_url)
        events = AmiOwnership(conn, client, feed, name, owner_gauge(registry))
        jobs = SingletonLease(conn, client, name, registry)
        jobs.singletons.append(Service())
        return events, jobs, client, feed

    first, first_jobs, first_client, first_feed = engine("e1")
    second, second_jobs, _, second_feed = engine("e2")
    for lease in (first, second, first_jobs, second_jobs):
        await lease.check()
    assert (first.owner, first.token, second.owner) == (True, 1, False)
    assert (first_feed.resyncs, second_feed.resyncs) == (["pbx-a"], [])
    assert first_jobs.singletons[0].running and not second_jobs.singletons[0].running
    first_client.connected = False
    first.check()                                   # link down: it lets go
    first_jobs.check()
    assert not first.owner and not first_jobs.singletons[0].running
    await deferLater(reactor, LEASE_MS / 1000 + 0.2, lambda: None)
    await second.check()
    await second_jobs.check()
    assert second.owner and second.token == 2 and second_feed.resyncs == ["pbx-a"]
    assert second_jobs.singletons[0].running
