"""`ccengine prompts build|check`: registered by ccengine/cli.py (FEATURE_COMMANDS)."""
from __future__ import annotations

import argparse
from pathlib import Path
from collections.abc import Callable

from ccengine.cli.support import config_or_report
from ccengine.prompts.build import RATE_FORMATS, cmd_build
from ccengine.prompts.check import cmd_check


def register(sub: argparse._SubParsersAction, config_arg: Callable) -> None:
    prompts = sub.add_parser("prompts", help="render and check the prompt catalogue")
    commands = prompts.add_subparsers(dest="prompts_command", required=True)

    build = commands.add_parser(
        "build", help="render every prompt without a recording (espeak-ng + sox)")
    config_arg(build)
    build.add_argument("--sounds-dir", help="Asterisk's sounds directory, or one linked into it "
                                            "(default: <engine.state_dir>/sounds)")
    build.add_argument("--recordings-dir", help="admin recordings, <lang>/<stem>.<fmt> "
                                                "(default: <engine.state_dir>/recordings if present)")
    build.add_argument("--rate", type=int, action="append", choices=sorted(RATE_FORMATS),
                       help="sample rate to render; repeat for several (default: 8000)")
    build.set_defaults(func=_build)

    check = commands.add_parser(
        "check", help="fail on prompts the engine or the dialplans use that do not exist")
    config_arg(check)
    check.add_argument("--dialplans", default="dialplans",
                       help="directory of Asterisk *.conf files to scan (default: dialplans)")
    check.set_defaults(func=_check)


def _build(args: argparse.Namespace) -> int:
    config = config_or_report(args)
    if config is None:
        return 1
    recordings = args.recordings_dir
    if recordings is None and (config.state_dir / "recordings").is_dir():
        recordings = config.state_dir / "recordings"
    return cmd_build(dict(config.prompts), company=config.company.name,
                     languages=config.company.languages,
                     default_language=config.company.default_language,
                     sounds_dir=Path(args.sounds_dir or config.state_dir / "sounds"),
                     recordings_dir=recordings, rates=tuple(args.rate or (8000,)))


def _check(args: argparse.Namespace) -> int:
    config = config_or_report(args)
    if config is None:
        return 1
    dialplans = Path(args.dialplans)
    if not dialplans.is_dir():
        print(f"prompts check: {dialplans} is not a directory; checking the engine's prompts only")
    return cmd_check(dict(config.prompts), company=config.company.name,
                     languages=config.company.languages,
                     default_language=config.company.default_language,
                     dialplan_dir=dialplans if dialplans.is_dir() else None)
