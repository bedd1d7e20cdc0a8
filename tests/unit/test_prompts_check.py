"""`prompts check`: references from the engine's code and the dialplans must exist."""
from __future__ import annotations

from pathlib import Path

from ccengine.prompts.catalogue import REQUIRED_PROMPTS, load_catalogue
from ccengine.prompts.check import check, cmd_check, dialplan_references

DIALPLAN = """\
; Playback(ccengine/commented_out) is only a comment
#include "/etc/ccengine/extra.conf"
#include "ccengine/globals_ccengine.conf"
[hotline]
exten => 4000,1,Answer()
 same => n,Playback(ccengine/welcome)
 same => n,Background(en/ccengine/menu&ccengine/no_such_prompt)
"""


def write_dialplan(tmp_path: Path, text: str = DIALPLAN) -> Path:
    (tmp_path / "hotline.conf").write_text(text, "utf-8")
    return tmp_path


def test_dialplan_references_skip_comments_and_paths(tmp_path):
    """Only sound names under ccengine/ in dialplan code count: not comments, #include, /etc paths."""
    refs = dialplan_references(write_dialplan(tmp_path))
    assert [stem for stem, _ in refs] == ["welcome", "menu", "no_such_prompt"]
    assert refs[2][1] == "hotline.conf:7"


def test_check_fails_on_a_missing_dialplan_prompt(tmp_path):
    """A dialplan naming a sound that no language of the catalogue has is a failure."""
    report = check(load_catalogue(company="ACME"), write_dialplan(tmp_path))
    assert report.failures == [
        "hotline.conf:7: ccengine/no_such_prompt is not a sound of the catalogue in any language"]


def test_check_fails_on_a_missing_engine_prompt():
    """A prompt the engine plays that has no text in any language is a failure."""
    report = check(load_catalogue(company="ACME"), None, REQUIRED_PROMPTS | {"vip_greeting"})
    assert report.failures == [
        "prompt 'vip_greeting' is played by the engine but has no text in any language"]


def test_check_passes_and_warns_on_one_language(tmp_path):
    """A prompt present in one language only is a warning (the player falls back), not a failure."""
    catalogue = load_catalogue({"vip_greeting": {"en": "Welcome back."}}, company="ACME")
    report = check(catalogue, write_dialplan(tmp_path, "exten => s,1,Playback(ccengine/menu)\n"),
                   REQUIRED_PROMPTS | {"vip_greeting"})
    assert report.failures == []
    assert report.warnings == ["prompt 'vip_greeting' has no text in zh"]


def test_cmd_check_exit_codes(tmp_path):
    """The CLI entry prints the report and exits 1 on failures, 0 otherwise."""
    lines: list[str] = []
    args = dict(company="ACME", languages=("zh", "en"), default_language="zh", out=lines.append)
    assert cmd_check(None, dialplan_dir=write_dialplan(tmp_path), **args) == 1
    assert any("no_such_prompt" in line for line in lines)
    assert cmd_check(None, dialplan_dir=None, **args) == 0
    assert cmd_check({"menu": {"xx": "?"}}, dialplan_dir=None, **args) == 1


def test_cli_prompts_check_fails_on_a_missing_dialplan_prompt(tmp_path, monkeypatch, capsys):
    """`ccengine prompts check --dialplans DIR` exits 1 and names the missing sound."""
    from ccengine.cli import main
    monkeypatch.delenv("CCENGINE_CONFIG", raising=False)
    assert main(["prompts", "check", "--dialplans", str(write_dialplan(tmp_path))]) == 1
    assert "ccengine/no_such_prompt" in capsys.readouterr().out
