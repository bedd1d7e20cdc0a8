"""Static checks on the code: pyflakes on everything, ruff and mypy with the project's settings
on the engine."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyflakes_is_clean_on_engine_benchmarks_and_tests():
    """`pyflakes ccengine bench tests` reports nothing (an undefined name is a crash waiting)."""
    result = subprocess.run([sys.executable, "-m", "pyflakes", "ccengine", "bench", "tests"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout + result.stderr == ""


def test_ruff_is_clean_on_the_engine():
    """`ruff check ccengine` with the project's rule set (pyproject.toml: pycodestyle, pyflakes,
    bugbear, pyupgrade and McCabe complexity 15, which replaced the 420-line file gate)."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "ccengine"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout + result.stderr) == (0, "All checks passed!\n")


def test_ruff_reports_a_function_that_grew_too_complex(tmp_path):
    """The complexity rule is live: a function with 16 branches is reported as C901."""
    body = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(16))
    module = tmp_path / "complex.py"
    module.write_text(f"def f(x):\n{body}    return -1\n")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
                             str(ROOT / "pyproject.toml"), str(module)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "C901" in result.stdout


def test_mypy_is_clean_on_the_engine(tmp_path):
    """`mypy ccengine` with the project's settings (pyproject.toml: mypy-zope for Twisted's
    interfaces) finds no error; a fresh cache, so the result is this tree's."""
    result = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path),
                             "ccengine"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found")
