"""bench/memory.py still runs end to end (--smoke: 200 held sessions, 500 queue members and
callers, a few seconds of soak). Only completion and the presence of its result lines are
checked: memory figures and timings are never asserted in the test suite (issue 20)."""
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


def test_memory_bench_smoke_prints_every_part_and_its_verdicts():
    """bench/memory.py --smoke holds sessions against the hotline server, releases them twice
    (and counts what they left), measures the queue picture by events and by QueueStatus,
    breaks a session down in process and soaks; each part prints its result line."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "memory.py"), "--smoke"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    out = done.stdout
    for round_no in (1, 2):
        assert f"# round {round_no}: 200 sessions held in the greeting" in out
        assert f"# round {round_no}: fresh call while held: " in out
        assert f"# round {round_no}: released: engine gauge " in out
    assert "idle AGI session: " in out and "KiB RSS per session <= 20 KiB" in out
    assert "a fresh call completes while 200 sessions are held" in out
    assert "the engine's session count returns to 0 after release" in out
    assert "peak of round 2 not above round 1's" in out
    assert "nothing left behind by 400 released sessions" in out
    assert "INFO idle AGI session in process: " in out and "ccengine/agi/wire.py" in out
    assert "INFO queue picture via events: " in out and "B per member" in out
    assert "INFO queue picture via QueueStatus (1000 entries): " in out
    assert " soak 50 calls/s: RSS " in out and "growth " in out
