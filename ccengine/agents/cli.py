"""`ccengine agents add|list|set-pin|set-queues|remove|status|allow-pause`.

Every read and write goes through agents/directory.py's AgentDirectory and agents/state.py's
AgentStateStore, the stores the engine uses (cli/support.py's store_command). PINs are read
with getpass on a terminal, or from --pin-stdin / --pin-file (scripts) or --pin, and stored
hashed (directory.hash_pin).
"""
from __future__ import annotations

import asyncio
import getpass
import sys
import time

from ccengine.agents.directory import (AgentDirectory, AgentRecord, BadAgentValue, check_number,
                                       hash_pin, parse_queue_spec)
from ccengine.agents.state import AgentStateStore, MemberState, effective
from ccengine.cli import output
from ccengine.cli import support as cli_support
from ccengine.cli.support import wait


def register(subparsers, config_arg) -> None:
    command = cli_support.command_group(subparsers, config_arg, "agents",
                                        "manage agents (directory, PINs, live state)")

    p = command("add", cmd_add, "add an agent")
    p.add_argument("number")
    p.add_argument("--queues", required=True, help="queue[:penalty],... e.g. inbound:0,complaint:1")
    p.add_argument("--languages", default="", help="languages the agent speaks, e.g. zh,en")
    p.add_argument("--name", default="", help="for supervisors only; never announced")
    _pin_options(p)
    output.add_json_option(command("list", cmd_list, "list agents"))
    p = command("set-pin", cmd_set_pin, "set an agent's PIN (and unlock them)")
    p.add_argument("number")
    _pin_options(p)
    p = command("set-queues", cmd_set_queues, "set an agent's queues and penalties")
    p.add_argument("number")
    p.add_argument("--queues", required=True)
    p = command("remove", cmd_remove, "remove an agent (must be logged out)")
    p.add_argument("number")
    output.add_json_option(command("status", cmd_status, "live state of logged-in agents per queue"))
    p = command("allow-pause", cmd_allow_pause, "let an agent's next pause pass the staffing guard")
    p.add_argument("number")
    p.add_argument("--minutes", type=int, default=15)


def _pin_options(parser) -> None:
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--pin", help="the PIN (visible in `ps`: prefer --pin-stdin or --pin-file)")
    how.add_argument("--pin-stdin", action="store_true",
                     help="read the PIN from the first line of standard input")
    how.add_argument("--pin-file", help="read the PIN from the first line of this file")


def _pin(args) -> str:
    """The PIN from --pin, --pin-stdin, --pin-file, else asked twice on a terminal."""
    if args.pin:
        return args.pin
    if args.pin_stdin:
        return sys.stdin.readline().strip()
    if args.pin_file:
        with open(args.pin_file, encoding="utf-8") as handle:
            return handle.readline().strip()
    if not sys.stdin.isatty():
        raise BadAgentValue("no PIN given and no terminal to ask on: use --pin-stdin or "
                            "--pin-file")
    first = getpass.getpass("PIN: ")
    if getpass.getpass("PIN again: ") != first:
        raise BadAgentValue("the two PINs differ")
    return first


_run = cli_support.store_command("agents", (BadAgentValue,))


@_run
async def cmd_add(args, conn, config) -> int:
    number = check_number(args.number)
    queues = parse_queue_spec(args.queues, set(config.queues))
    languages = tuple(x for x in args.languages.split(",") if x)
    bad = [x for x in languages if x not in config.company.languages]
    if bad:
        raise BadAgentValue(f"languages not configured: {','.join(bad)}")
    directory = AgentDirectory(conn)
    if await wait(directory.get(number)) is not None:
        raise BadAgentValue(f"agent {number} exists (use set-pin / set-queues)")
    # The hash is computed in a thread: PBKDF2 takes tens of milliseconds.
    pin_hash = await asyncio.to_thread(hash_pin, _pin(args))
    record = AgentRecord(number, queues, languages, args.name.strip()[:80], pin_hash)
    if not await wait(directory.add(record)):
        raise BadAgentValue(f"agent {number} exists (use set-pin / set-queues)")
    print(f"agent {number} added ({', '.join(f'{q}:{v}' for q, v in queues.items())})")
    return 0


@_run
async def cmd_list(args, conn, config) -> int:
    rows = []
    for record, logged_in in await wait(AgentDirectory(conn).records()):
        queues = ",".join(f"{q}:{p}" for q, p in sorted(record.queues.items()))
        rows.append((record.number, queues, ",".join(record.languages),
                     "logged in" if logged_in else "logged out", record.name))
    output.table(("agent", "queues", "languages", "login", "name"), rows, args.json)
    return 0


@_run
async def cmd_set_pin(args, conn, config) -> int:
    number = check_number(args.number)
    directory = AgentDirectory(conn)
    if await wait(directory.get(number)) is None:
        raise BadAgentValue(f"no agent {number}")
    pin_hash = await asyncio.to_thread(hash_pin, _pin(args))
    if not await wait(directory.set_pin(number, pin_hash)):
        raise BadAgentValue(f"no agent {number}")
    print(f"agent {number}: PIN set")
    return 0


@_run
async def cmd_set_queues(args, conn, config) -> int:
    number = check_number(args.number)
    queues = parse_queue_spec(args.queues, set(config.queues))
    logged_in = await wait(AgentDirectory(conn).set_queues(number, queues))
    if logged_in is None:
        raise BadAgentValue(f"no agent {number}")
    note = " (takes effect at the agent's next login)" if logged_in else ""
    print(f"agent {number}: queues set{note}")
    return 0


@_run
async def cmd_remove(args, conn, config) -> int:
    number = check_number(args.number)
    result = await wait(AgentDirectory(conn).remove(number))
    if result == "logged_in":
        raise BadAgentValue(f"agent {number} is logged in; log out from the phone first")
    if result != "removed":
        raise BadAgentValue(f"no agent {number}")
    print(f"agent {number}: removed")
    return 0


@_run
async def cmd_status(args, conn, config) -> int:
    now = time.time()
    sessions = await wait(AgentDirectory(conn).sessions())
    states = AgentStateStore(conn)
    rows = []
    for number, session in sessions.items():
        per_queue = await wait(states.get(number))
        for queue in sorted(session.queues):
            ms = per_queue.get(queue) or MemberState("logged_out")
            state = effective(ms, now, config.agents.wrapup_seconds)
            since = time.strftime("%H:%M:%S", time.localtime(ms.since)) if ms.since else ""
            rows.append((number, session.phone, queue, state,
                         ms.reason if state == "paused" else "", since))
    output.table(("agent", "phone", "queue", "state", "reason", "since"), rows, args.json)
    return 0


@_run
async def cmd_allow_pause(args, conn, config) -> int:
    number = check_number(args.number)
    if not 1 <= args.minutes <= 480:
        raise BadAgentValue("--minutes must be 1..480")
    await wait(AgentDirectory(conn).allow_pause(number, args.minutes * 60))
    print(f"agent {number}: next pause allowed within {args.minutes} minutes")
    return 0
