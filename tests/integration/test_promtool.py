"""Prometheus configuration, rules and the engine's exposition checked with the real promtool
(Debian package `prometheus`, /usr/bin/promtool)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.task import Clock

import ami_replay
from ccengine.agents.metrics import AgentMetrics
from ccengine.ami.metrics import AmiMetrics
from ccengine.stats import QueueStats
from ccengine.waiting.metrics import WaitingMetrics
from ccengine.config import QueueConfig as Queue  # the real per-queue settings

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

pytestmark = pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool not installed")


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, timeout=60,
                          cwd=PROMETHEUS)


def replayed_exposition() -> bytes:
    """The text exposition of the queue, AMI, agent and waiting families after replaying
    a_answered and b_abandoned."""
    registry = CollectorRegistry()
    clock = Clock()
    queues = {n: Queue(n) for n in ("inbound", "complaint", "outbound", "supervisor")}
    AmiMetrics(registry)
    AgentMetrics(registry, ["break"]).track_states(queues, dict, clock, 10)
    WaitingMetrics(registry, queues)
    stats = QueueStats.build(registry, queues, clock)
    for capture in ("a_answered", "b_abandoned"):
        for message in ami_replay.events(capture):
            stats.consumer.handle(message)
    return generate_latest(registry)


def test_rule_files_pass_promtool_check_rules():
    """Every rule file is valid for `promtool check rules`."""
    rules = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "rules").glob("*.yml"))
    assert len(rules) == 2
    result = promtool("check", "rules", *rules)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_rule_unit_tests_pass():
    """`promtool test rules` passes the unit tests (expected alerts and recording-rule values)."""
    tests = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test():
    """Each alert in the alert rules is exercised by at least one promtool alert test."""
    import yaml
    alerts = {rule["alert"] for group in yaml.safe_load(
        (PROMETHEUS / "rules" / "ccengine-alerts.yml").read_text())["groups"]
        for rule in group["rules"]}
    tested = {case["alertname"] for path in (PROMETHEUS / "tests").glob("*.yml")
              for test in yaml.safe_load(path.read_text())["tests"]
              for case in test.get("alert_rule_test", ())
              if case.get("exp_alerts")}
    assert alerts and alerts <= tested


def test_prometheus_config_passes_promtool_check_config():
    """deploy/prometheus/prometheus.yml and the rule files it names pass `promtool check config`."""
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_engine_exposition_passes_promtool_check_metrics():
    """/metrics content after replaying a_answered + b_abandoned passes `promtool check metrics`."""
    exposition = replayed_exposition()
    assert b'ccengine_queue_answered_total{queue="complaint",server="asterisk"} 1.0' in exposition
    assert b'ccengine_queue_abandoned_total{queue="complaint",server="asterisk"} 1.0' in exposition
    result = promtool("check", "metrics", stdin=exposition)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "" and result.stderr.decode().strip() == ""
