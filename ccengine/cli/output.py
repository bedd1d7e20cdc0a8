"""How every `ccengine` command prints and exits (the README's "Exit codes").

    0  done
    1  the input had problems: the good part was used, each problem printed (check-config,
       prompts check, callers import, outbound load with refused lines)
    2  usage error, a bad value, or something named that does not exist
    3  Redis unreachable

Lists print a header line and one tab-separated line per item, or "(none)"; `--json` prints the
same items as a JSON list. Messages are sentences on stderr, prefixed `ccengine <group>:`.
A closed pipe (`ccengine outbound list | head`) ends the command quietly.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

OK, INPUT_PROBLEMS, USAGE, REDIS = 0, 1, 2, 3


def add_json_option(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], as_json: bool = False) -> None:
    """A header and one tab-separated line per row, or "(none)"; or a JSON list of objects."""
    rows = [list(row) for row in rows]
    if as_json:
        print(json.dumps([dict(zip(columns, row)) for row in rows], ensure_ascii=False,
                         indent=1, default=str))
        return
    print("\t".join(columns))
    if not rows:
        print("(none)")
    for row in rows:
        print("\t".join("-" if value in (None, "") else str(value) for value in row))


def quiet_on_closed_pipe() -> None:
    """After a BrokenPipeError: point stdout at /dev/null so the interpreter's final flush
    does not complain again (Python's documented recipe, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
