"""bench/ami_real.py still runs end to end on the committed capture (transcripts3
load_2cps_ami, tests/fixtures/ami/load_2cps_ami.raw.xz): --smoke replays its first events to
a real engine process through the stand-in AMI server, whole and filtered as the shipped
manager.conf would. Only completion and the result lines are checked, never timings."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def test_ami_real_smoke_replays_both_variants_and_reports_cpu_per_call():
    """--smoke: the engine logs in to the stand-in, every event sent is counted by the
    engine in both variants, and the CPU-per-call lines and the smoke verdict are printed."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ami_real.py"), "--smoke"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    out = done.stdout
    assert "unfiltered: 6000 events" in out
    assert "filtered:" in out and "ms/call" in out and "idle over the same wall time" in out
    assert "INFO smoke run: filtered" in out
    assert "FAIL" not in out
