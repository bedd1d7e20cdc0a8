"""`ccengine prompts check`: every prompt the engine or the dialplans use must exist.

Two sources of references:
- the names the Python code plays (`catalogue.REQUIRED_PROMPTS`, or any set the caller passes);
- sound names under `ccengine/` written in the dialplans (`Playback(ccengine/welcome)`,
  `Background(ccengine/menu)`, `periodic-announce = ccengine/please_hold` in queues.conf ...),
  found by scanning every `*.conf` file outside comments.
A reference is a failure when no configured language has it; a prompt missing in some but not
all languages is a warning (the player falls back to another language at run time).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable

from ccengine.prompts.catalogue import (
    REQUIRED_PROMPTS, SOUND_DIR, Catalogue, CatalogueError, load_catalogue,
)

# `ccengine/<stem>` not preceded by a path character (so /etc/ccengine/... is not a reference),
# optionally with a language directory in front (`en/ccengine/welcome`).
# A name followed by '.' is a file with an extension (`#include "ccengine/x.conf"`), not a sound.
DIALPLAN_REF_RE = re.compile(
    rf"(?<![\w/.-])(?:[a-z]{{2,3}}(?:_[A-Z]{{2}})?/)?{SOUND_DIR}/([A-Za-z0-9_][A-Za-z0-9_/-]*)"
    r"(?![\w/.-])")


@dataclass
class CheckReport:
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"FAIL  {f}" for f in self.failures] + [f"warn  {w}" for w in self.warnings]
        out.append(f"prompts check: {len(self.failures)} failure(s), {len(self.warnings)} warning(s)")
        return out


def dialplan_references(dialplan_dir: Path) -> list[tuple[str, str]]:
    """(stem, 'file:line') for every `ccengine/<stem>` sound named in `*.conf` files."""
    refs = []
    for path in sorted(Path(dialplan_dir).rglob("*.conf")):
        for number, line in enumerate(path.read_text("utf-8").split("\n"), 1):
            code = line.split(";", 1)[0]   # Asterisk config comments start at ';'
            if code.lstrip().startswith("#"):   # #include / #exec name config files
                continue
            refs += [(m.group(1), f"{path.name}:{number}") for m in DIALPLAN_REF_RE.finditer(code)]
    return refs


def check(catalogue: Catalogue, dialplan_dir: Path | None = None,
          ivr_prompt_names: Iterable[str] = REQUIRED_PROMPTS) -> CheckReport:
    report = CheckReport()
    ivr_prompt_names = set(ivr_prompt_names)
    for name in sorted(ivr_prompt_names):
        langs = [lang for lang in catalogue.languages if catalogue.has(name, lang)]
        if not langs:
            report.failures.append(f"prompt {name!r} is played by the engine but has no text "
                                   "in any language")
        elif len(langs) < len(catalogue.languages):
            missing = [lang for lang in catalogue.languages if lang not in langs]
            report.warnings.append(f"prompt {name!r} has no text in {', '.join(missing)}")
    if dialplan_dir is not None:
        stems = {lang: set(catalogue.files(lang)) for lang in catalogue.languages}
        for stem, where in dialplan_references(dialplan_dir):
            have = [lang for lang in catalogue.languages if stem in stems[lang]]
            if not have:
                report.failures.append(f"{where}: {SOUND_DIR}/{stem} is not a sound of the "
                                       "catalogue in any language")
            elif len(have) < len(catalogue.languages):
                report.warnings.append(f"{where}: {SOUND_DIR}/{stem} exists only in "
                                       f"{', '.join(have)}")
    for name in sorted(catalogue.names()):
        langs = [lang for lang in catalogue.languages if catalogue.has(name, lang)]
        if name not in ivr_prompt_names and len(langs) < len(catalogue.languages):
            report.warnings.append(f"prompt {name!r} has no text in "
                                   f"{', '.join(sorted(set(catalogue.languages) - set(langs)))}")
    return report


def cmd_check(overrides: dict | None, *, company: str, languages: Iterable[str],
              default_language: str, dialplan_dir: str | Path | None,
              ivr_prompt_names: Iterable[str] = REQUIRED_PROMPTS,
              out: Callable[[str], None] = print) -> int:
    """`ccengine prompts check`: prints the report; exit code 1 on any failure."""
    try:
        catalogue = load_catalogue(overrides, company=company, languages=tuple(languages),
                                   default_language=default_language)
    except CatalogueError as exc:
        for problem in exc.problems:
            out(f"FAIL  catalogue: {problem}")
        return 1
    report = check(catalogue, Path(dialplan_dir) if dialplan_dir else None, ivr_prompt_names)
    for line in report.lines():
        out(line)
    return 1 if report.failures else 0
