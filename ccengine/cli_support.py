"""What every feature's CLI shares: finding the Redis the engine uses.

The CLI runs without a reactor and uses redis-py's synchronous client. The URL is, in order:
`--redis-url`; `redis.url` of the configuration; the private redis-server the engine started
under its state directory (`<state_dir>/redis/url`, written while it runs, see
store/embedded.py); else `redis://127.0.0.1:6379/0`.
"""
from __future__ import annotations

import argparse
from urllib.parse import urlparse

from ccengine.config import Config
from ccengine.store.embedded import URL_FILE, redis_answers

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def add_redis_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help="Redis URL (default: redis.url of the configuration, "
                                            "else the engine's own redis-server, else "
                                            "127.0.0.1:6379)")


def redis_url(args: argparse.Namespace, config: Config) -> str:
    if getattr(args, "redis_url", None):
        return args.redis_url
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
