"""The FastAGI server's timings, defined once: config.FastAgiConfig (the `[fastagi]` section)
extends this class with the listening address, and agi/server.py reads it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgiSettings:
    command_timeout: float = 10.0   # reply to an ordinary command
    media_timeout: float = 120.0    # reply to a prompt (STREAM FILE, GET DATA, SAY, EXEC)
    max_silence: float = 3.0        # engine holds the line with no command in flight
    watchdog_grace: float = 1.0     # deadline for Route.on_watchdog
    max_session: float = 600.0      # overall cap of one session
    env_timeout: float = 10.0       # connected but no complete environment
    stop_grace: float = 8.0         # at a stop: time for sessions to reach their default route
    max_connections: int = 4000     # FastAGI connections at once (callers + agents + hooks)
    max_connections_per_source: int = 4000   # ... from one address (one Asterisk: all of them)
