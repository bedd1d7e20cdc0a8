"""Static checks on the code: pyflakes finds no unused import, undefined name or dead local."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyflakes_is_clean_on_engine_benchmarks_and_tests():
    """`pyflakes ccengine bench tests` reports nothing (an undefined name is a crash waiting)."""
    result = subprocess.run([sys.executable, "-m", "pyflakes", "ccengine", "bench", "tests"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout + result.stderr == ""


def test_no_engine_module_is_far_over_400_lines():
    """Modules stay small enough to read in one sitting (the project's ~400-line rule)."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "ccengine").rglob("*.py")
            if (n := len(p.read_text("utf-8").split("\n"))) > 420}
    assert long == {}
