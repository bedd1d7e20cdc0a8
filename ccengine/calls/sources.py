"""Caller lists from files: the blocklist and VIP customers, loaded into Redis at start.

File formats (UTF-8, `#` starts a comment, blank lines ignored):
- blocklist: one number per line;
- VIP file: `number,name` per line (name optional).
A bad line is reported with its line number and skipped; the rest still loads, because one
typo must not unblock every nuisance caller. Loading is additive: numbers removed from a file
stay in Redis until removed with `ccengine callers unblock` / `callers remove`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

NUMBER_RE = re.compile(r"\+?[0-9]{3,32}")


@dataclass
class CallerList:
    entries: list[tuple[str, str]] = field(default_factory=list)   # (number, name)
    problems: list[str] = field(default_factory=list)


def read_list(path: str | Path, with_names: bool) -> CallerList:
    """Parse a blocklist (numbers) or VIP file (number,name); never raises for bad lines."""
    out = CallerList()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        out.problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        return out
    except UnicodeDecodeError:
        out.problems.append(f"{path}: cannot read: not UTF-8 text")
        return out
    # Split on \n only: str.splitlines() also splits on \x0b, \x1c and U+2028 (STYLE.md).
    for n, line in enumerate(text.split("\n"), 1):
        line = line.split("#", 1)[0].strip(" \t\r")
        if not line:
            continue
        number, _, name = line.partition(",") if with_names else (line, "", "")
        number, name = number.strip(), name.strip()
        if not NUMBER_RE.fullmatch(number):
            out.problems.append(f"{path}:{n}: not a phone number: {number[:40]!r}")
            continue
        if any(not ch.isprintable() for ch in name):
            out.problems.append(f"{path}:{n}: name has control characters")
            continue
        out.entries.append((number, " ".join(name.split())[:80]))
    return out
