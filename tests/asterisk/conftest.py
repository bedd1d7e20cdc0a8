"""Fixtures of the real-Asterisk tests: skipped cleanly unless CCENGINE_TEST_ASTERISK names an
Asterisk 22 install prefix (sbin/asterisk) and SIPp (Debian sip-tester) is installed."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from asterisk_lab import AGENT_PIN, AGENTS, ENGINE, AmiObserver, Asterisk, Engine, Sipp, prefix

ARTEFACTS = Path(__file__).resolve().parents[2] / "tests" / "asterisk" / "artefacts"


@dataclass
class Lab:
    asterisk: Asterisk
    engine: Engine
    ami: AmiObserver
    sipp: Sipp


def _require_lab() -> Path:
    found = prefix()
    if found is None:
        pytest.skip("CCENGINE_TEST_ASTERISK does not name an Asterisk install prefix "
                    "(docs/operations.md, 'Real-Asterisk tests')")
    if shutil.which("sipp") is None:
        pytest.skip("SIPp is not installed (Debian package sip-tester)")
    return found


@pytest.fixture(scope="session")
def lab_sounds(tmp_path_factory):
    """The engine's prompts, rendered once (espeak-ng + sox) for every lab Asterisk."""
    _require_lab()
    sounds = tmp_path_factory.mktemp("sounds")
    subprocess.run([str(ENGINE), "prompts", "build", "--sounds-dir", str(sounds)], check=True,
                   capture_output=True, timeout=600)
    return sounds


@pytest.fixture
def lab(request, tmp_path, redis_url, lab_sounds):
    """A fresh Asterisk (our deploy/ and dialplans/ configuration), the engine logged in to its
    AMI with agents 1001-1005 in its directory (PIN AGENT_PIN), an AMI observer and SIPp."""
    found = _require_lab()
    for name in ("asterisk", "engine", "sipp"):
        (tmp_path / name).mkdir()
    asterisk = Asterisk(found, tmp_path / "asterisk", lab_sounds)
    asterisk.write_config()
    engine = Engine(tmp_path / "engine", asterisk, redis_url, lab_sounds)
    engine.write_config()
    for agent in AGENTS:
        engine.cli("agents", "add", agent, "--queues", "inbound,complaint", "--pin", AGENT_PIN)
    asterisk.start()
    ami = AmiObserver(asterisk.ami_port, tmp_path / "asterisk" / "ami_stream.raw")
    sipp = Sipp(tmp_path / "sipp", asterisk)
    lab = Lab(asterisk, engine, ami, sipp)
    try:
        if "engine_down" not in request.keywords:
            engine.start()
        yield lab
    finally:
        sipp.stop()
        ami.close()
        engine.stop()
        asterisk.stop()
        keep = ARTEFACTS / request.node.name
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        for path in (asterisk.messages, asterisk.home / "log" / "queue_log",
                     asterisk.home / "ami_stream.raw",
                     engine.home / "engine.log", *sorted((tmp_path / "sipp").glob("*"))):
            if path.exists() and path.is_file():
                shutil.copy(path, keep / path.name)

