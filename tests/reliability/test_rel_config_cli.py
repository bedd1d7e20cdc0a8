"""Issue 8, case 6: a broken configuration is named problem by problem and never half-starts.

Runs the installed command line (`.venv/bin/ccengine`, the entry point of pyproject.toml) in a
subprocess, in an empty working directory, exactly as an admin would.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CCENGINE = Path(sys.executable).with_name("ccengine")

BROKEN = """
[fastagi]
port = "4573"
bogus = 1

[http]
max_body_bytes = -5

[queues.inbound]
service_level_seconds = "fast"

[queues.sales]
open = "25:00"

[ivr]
default_queue = "nowhere"

[ivr.options.3]
queue = "complaints"

[colour]
x = 1
"""

EXPECTED = [
    "colour: unknown key",
    "fastagi.bogus: unknown key",
    "fastagi.port: expected int, got '4573'",
    "http.max_body_bytes: must be greater than 0",
    "queues.inbound.service_level_seconds: expected int, got 'fast'",
    "queues.sales.open: expected HH:MM, got '25:00'",
    "ivr.default_queue: queue 'nowhere' is not configured",
    "ivr.options.3.queue: queue 'complaints' is not configured",
]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCENGINE_")}
    return subprocess.run([str(CCENGINE), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def broken(tmp_path) -> Path:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN, encoding="utf-8")
    return path


def test_case6_check_config_names_every_problem_and_exits_1(broken, tmp_path):
    """Case 6: `ccengine check-config FILE` prints each problem (wrong type, unknown key,
    bad value, unconfigured queue) with the file and its location, and exits 1."""
    result = run_cli("check-config", str(broken), cwd=tmp_path)
    assert result.returncode == 1
    problems = result.stderr.strip().splitlines()
    assert problems[-1] == f"{len(EXPECTED)} problem(s) found"
    assert sorted(problems[:-1]) == sorted(f"{broken}: {p}" for p in EXPECTED)
    assert result.stdout == ""


def test_case6_run_with_a_broken_config_refuses_to_start_anything(broken, tmp_path):
    """Case 6: `ccengine run --config BAD` exits non-zero with the problems and a clear
    refusal, before any reactor, listener, state directory or redis-server exists."""
    result = run_cli("run", "--config", str(broken), cwd=tmp_path)
    assert result.returncode != 0
    assert "refusing to start with a broken configuration" in result.stderr
    assert f"{broken}: fastagi.port: expected int, got '4573'" in result.stderr
    assert "ccengine running" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.toml"]   # no state/ dir


@pytest.mark.parametrize("content,message", [
    ("[fastagi\nport = 1", "TOML syntax error"),
    (None, "cannot read"),
    ("[queues]\ninbound = 5\n", "queues.inbound: expected a table"),
], ids=["syntax", "missing-file", "queue-not-a-table"])
def test_case6_unreadable_or_unparsable_files_are_refused_clearly(tmp_path, content, message):
    """Case 6: a TOML syntax error, a missing file or a queue that is not a table are reported
    by check-config (exit 1) and refused by run (non-zero), never half-loaded."""
    path = tmp_path / "c.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    check = run_cli("check-config", str(path), cwd=tmp_path)
    assert check.returncode == 1 and message in check.stderr
    start = run_cli("run", "--config", str(path), cwd=tmp_path)
    assert start.returncode != 0 and message in start.stderr
    assert "state" not in {p.name for p in tmp_path.iterdir()}


def test_case6_a_good_file_passes_check_config(tmp_path):
    """Case 6: check-config is not a blanket refusal: an admin's valid file passes (exit 0)."""
    path = tmp_path / "good.toml"
    path.write_text('[company]\nname = "ACME"\n[queues.inbound]\nservice_level_seconds = 20\n',
                    encoding="utf-8")
    result = run_cli("check-config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
