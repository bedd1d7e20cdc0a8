"""asterisklint over the shipped dialplans (issue 2 part 6, issue 8 item 14).

The files are checked the way Asterisk loads them in the compose deployment: deploy/asterisk/
becomes /etc/asterisk/ and dialplans/ becomes /etc/asterisk/ccengine/ (docs/dialplans.md), so
the #include lines resolve exactly as on the real server. asterisklint knows the Asterisk
applications and functions and their argument counts, checks Goto targets and labels, and
exits 1 when it reports anything (`asterisklint dialplan-check --help`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The include-only file has no [general]/[globals] of its own by design (it is included after
# them); these two hints say exactly that and nothing else, so they are the only ones ignored,
# and only for that file.
INCLUDE_ONLY_HINTS = "H_DP_GENERAL_MISPLACED,H_DP_GLOBALS_MISPLACED"


def _asterisklint() -> str:
    beside = Path(sys.executable).parent / "asterisklint"
    found = str(beside) if beside.exists() else shutil.which("asterisklint")
    assert found, "asterisklint is not installed (it is a test dependency in pyproject.toml)"
    return found


def _etc_asterisk(tmp_path: Path) -> Path:
    """A copy of the layout Asterisk sees: deploy/asterisk/* plus dialplans/ as ccengine/."""
    etc = tmp_path / "asterisk"
    shutil.copytree(ROOT / "deploy" / "asterisk", etc)
    shutil.copytree(ROOT / "dialplans", etc / "ccengine")
    return etc


def _lint(conf: Path, ignore: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, ALINT_IGNORE=ignore)
    return subprocess.run([_asterisklint(), "dialplan-check", conf.name], cwd=conf.parent,
                          env=env, capture_output=True, text=True, timeout=120)


def test_deployed_extensions_conf_lints_clean(tmp_path):
    """extensions.conf with the ccengine includes resolved produces no asterisklint message at all."""
    result = _lint(_etc_asterisk(tmp_path) / "extensions.conf")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_include_file_lints_clean_on_its_own(tmp_path):
    """extensions_ccengine.conf alone has no error apart from not starting with [general]/[globals]."""
    etc = _etc_asterisk(tmp_path)
    result = _lint(etc / "ccengine" / "extensions_ccengine.conf", ignore=INCLUDE_ONLY_HINTS)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("old, new, message", [
    ("Playback(vm-nobodyavail)", "Playbak(vm-nobodyavail)", "E_APP_MISSING"),
    ("Goto(ccengine-wait,s,1)", "Goto(ccengine-wiat,s,1)", "E_DP_GOTO_NOCONTEXT"),
    ('GotoIf($["${QUEUESTATUS}" = "TIMEOUT"]?announce)',
     'GotoIf($["${QUEUESTATUS}" = "TIMEOUT"]announce)', "E_APP_ARG"),
], ids=["unknown-app", "bad-goto", "broken-gotoif"])
def test_asterisklint_reports_a_broken_dialplan(tmp_path, old, new, message):
    """A typo in the shipped dialplan makes the lint fail, so the clean result above means something."""
    etc = _etc_asterisk(tmp_path)
    target = etc / "ccengine" / "extensions_ccengine.conf"
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    result = _lint(etc / "extensions.conf")
    assert result.returncode == 1
    assert message in result.stdout + result.stderr
