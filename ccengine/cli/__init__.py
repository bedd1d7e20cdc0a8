"""`ccengine` command line: run, check-config, and one sub-command group per feature.

Feature packages add their groups through a `register(subparsers)` function listed in
FEATURE_COMMANDS, so this file stays small.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from ccengine.cli.support import config_or_report
from ccengine.config import ConfigError, load_config

# module path -> a function register(subparsers) that adds that feature's commands
FEATURE_COMMANDS = [
    "ccengine.calls.cli",
    "ccengine.prompts.cli",
    "ccengine.agents.cli",
    "ccengine.complaints.cli",
    "ccengine.outbound.cli",
    "ccengine.console.cli",
    "ccengine.cli.amicheck",
]


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default=os.environ.get("CCENGINE_CONFIG"),
                        help="TOML configuration file (default: $CCENGINE_CONFIG, else the "
                             "embedded defaults)")


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{config.source}: OK ({len(config.queues)} queues: {', '.join(sorted(config.queues))})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = config_or_report(args)
    if config is None:
        print("ccengine: refusing to start with a broken configuration", file=sys.stderr)
        return 2
    from twisted.internet.error import CannotListenError

    from ccengine import app  # imports the reactor: only for `run`
    from ccengine.store.embedded import EmbeddedRedisError
    # A failed start is one line that says what and where, and exit 2; app.run has already
    # stopped what it started (the private redis-server).
    try:
        return app.run(config)
    except CannotListenError as exc:
        reason = getattr(exc.socketError, "strerror", None) or exc.socketError
        print(f"ccengine: cannot listen on {exc.interface or '*'}:{exc.port}: {reason} "
              "(another engine running? check fastagi.port and http.port)", file=sys.stderr)
    except EmbeddedRedisError as exc:
        print(f"ccengine: cannot start the private redis-server: {exc}", file=sys.stderr)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ccengine: cannot start: {where}{exc.strerror or exc}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccengine", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the engine (FastAGI, AMI client, HTTP)")
    _config_arg(run)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", help="the TOML file to check")
    check.set_defaults(func=cmd_check_config)

    for module in FEATURE_COMMANDS:
        importlib.import_module(module).register(sub, _config_arg)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:            # `ccengine ... | head`: the reader has enough
        from ccengine.cli.output import quiet_on_closed_pipe
        quiet_on_closed_pipe()
        return 0

