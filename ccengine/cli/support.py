"""What every feature's CLI shares: finding the Redis the engine uses, and running a command
through the same store classes the engine uses (`store_command`: one road to Redis).

A CLI has no reactor: store commands run on asyncio (`asyncio.run`), and the stores'
Deferreds are awaited with `wait`. The URL is, in order:
`--redis-url`; `$CCENGINE_REDIS_URL` (for a URL with a password: not visible in `ps`);
`redis.url` of the configuration; the private redis-server the engine started
under its state directory (`<state_dir>/redis/url`, written while it runs, see
store/embedded.py); else `redis://127.0.0.1:6379/0`.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import concurrent.futures
import sys
from typing import Any
from collections.abc import Callable
from urllib.parse import urlparse

from twisted.internet.defer import Deferred

from ccengine.cli import output
from ccengine.config import Config, ConfigError, load_config
from ccengine.store.base import RedisConnection, StoreUnavailable
from ccengine.store.embedded import URL_FILE, redis_answers

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def command_group(subparsers: Any, config_arg: Callable, name: str, help_text: str,
                  wrap: Callable = lambda func: func) -> Callable[..., argparse.ArgumentParser]:
    """Add the group `ccengine <name>`; returns `command(name, func, help_text)`, which adds a
    sub-command with --config and --redis-url that runs `wrap(func)`."""
    group = subparsers.add_parser(name, help=help_text)
    sub = group.add_subparsers(dest=f"{name}_command", required=True)

    def command(cmd: str, func: Callable, cmd_help: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(cmd, help=cmd_help)
        config_arg(parser)
        add_redis_option(parser)
        parser.set_defaults(func=wrap(func))
        return parser
    return command


def add_redis_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help="Redis URL (default: $CCENGINE_REDIS_URL, else "
                                            "redis.url of the configuration, else the engine's "
                                            "own redis-server, else 127.0.0.1:6379)")


def redis_url(args: argparse.Namespace, config: Config) -> str:
    if getattr(args, "redis_url", None):
        return args.redis_url
    # A URL with a password does not belong on the command line (`ps` shows it).
    if os.environ.get("CCENGINE_REDIS_URL"):
        return os.environ["CCENGINE_REDIS_URL"]
    if config.redis.url:
        return config.redis.url
    recorded = config.state_dir / "redis" / URL_FILE
    try:
        url = recorded.read_text(encoding="utf-8").strip()
    except OSError:
        return DEFAULT_URL
    parsed = urlparse(url)
    if parsed.hostname and parsed.port and redis_answers(parsed.hostname, parsed.port):
        return url
    return DEFAULT_URL


def config_or_report(args: argparse.Namespace, prefix: str = "") -> Config | None:
    """The configuration named by `--config`, or None after printing each of its problems to
    stderr (one per line, after `prefix`); the caller picks the exit code."""
    try:
        return load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{prefix}{problem}", file=sys.stderr)
        return None


async def wait(result: Any) -> Any:
    """Await a store's Deferred (or a coroutine) on the running asyncio loop."""
    d = result if isinstance(result, Deferred) else Deferred.fromCoroutine(result)
    return await d.asFuture(asyncio.get_running_loop())


class CommandError(Exception):
    """A refusal with its message and exit code (cli/output.py: 1 input problems, 2 usage or
    not found)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def store_command(group: str, user_errors: tuple[type[Exception], ...] = ()) -> Callable:
    """Wrap `async func(args, conn, config)` as a CLI command: load the configuration, open a
    RedisConnection to the Redis the engine uses, run the command through the stores. Exit codes
    are cli/output.py's: 2 on a configuration or user error (CommandError, `user_errors`), 3
    when Redis fails, quiet on a closed pipe; messages go to stderr, prefixed
    `ccengine <group>:`."""
    def wrap(func: Callable) -> Callable[[argparse.Namespace], int]:
        def run(args: argparse.Namespace) -> int:
            config = config_or_report(args, f"ccengine {group}: ")
            if config is None:
                return 2

            async def main() -> int:
                explicit = getattr(args, "redis_url", None) or os.environ.get("CCENGINE_REDIS_URL")
                conn = RedisConnection(explicit, config.redis.timeout) if explicit else \
                    RedisConnection.from_config(config.redis, redis_url(args, config))
                try:
                    return await func(args, conn, config)
                finally:
                    await conn.aclose()
            refusals: tuple[type[Exception], ...] = (CommandError, *user_errors)
            try:
                return _run_to_completion(main)
            except refusals as exc:
                print(f"ccengine {group}: {exc}", file=sys.stderr)
                return getattr(exc, "exit_code", output.USAGE)
            except StoreUnavailable as exc:
                print(f"ccengine {group}: Redis is unreachable: {exc}", file=sys.stderr)
                return output.REDIS
            except BrokenPipeError:
                output.quiet_on_closed_pipe()
                return output.OK
            except OSError as exc:      # an input file the command was given
                where = f"{exc.filename}: " if exc.filename else ""
                print(f"ccengine {group}: cannot read {where}{exc.strerror or exc}",
                      file=sys.stderr)
                return output.USAGE
        return run
    return wrap


def _run_to_completion(main: Callable[[], Any]) -> Any:
    """`asyncio.run(main())`; in a thread of its own when the caller already runs an event loop
    (a command called in-process, e.g. from a test running on the reactor)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()
