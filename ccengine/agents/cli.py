"""`ccengine agents add|list|set-pin|set-queues|remove|status|allow-pause`.

Talks to Redis with the synchronous client (a CLI has no reactor). PINs are read with getpass
unless --pin is given, and stored hashed (directory.hash_pin).
"""
from __future__ import annotations

import getpass
import json
import time

import redis

from ccengine.agents.directory import (AgentRecord, AgentSession, BadAgentValue, check_number,
                                       hash_pin, parse_queue_spec)
from ccengine.agents.state import MemberState, effective
from ccengine.store import keys
from ccengine.cli import support as cli_support


def register(subparsers, config_arg) -> None:
    command = cli_support.command_group(subparsers, config_arg, "agents",
                                        "manage agents (directory, PINs, live state)")

    p = command("add", cmd_add, "add an agent")
    p.add_argument("number")
    p.add_argument("--queues", required=True, help="queue[:penalty],... e.g. inbound:0,complaint:1")
    p.add_argument("--languages", default="", help="languages the agent speaks, e.g. zh,en")
    p.add_argument("--name", default="", help="for supervisors only; never announced")
    p.add_argument("--pin", help="the PIN (asked for when omitted)")
    command("list", cmd_list, "list agents")
    p = command("set-pin", cmd_set_pin, "set an agent's PIN (and unlock them)")
    p.add_argument("number")
    p.add_argument("--pin")
    p = command("set-queues", cmd_set_queues, "set an agent's queues and penalties")
    p.add_argument("number")
    p.add_argument("--queues", required=True)
    p = command("remove", cmd_remove, "remove an agent (must be logged out)")
    p.add_argument("number")
    command("status", cmd_status, "live state of logged-in agents per queue")
    p = command("allow-pause", cmd_allow_pause, "let an agent's next pause pass the staffing guard")
    p.add_argument("number")
    p.add_argument("--minutes", type=int, default=15)


def _pin(args) -> str:
    if args.pin:
        return args.pin
    first = getpass.getpass("PIN: ")
    if getpass.getpass("PIN again: ") != first:
        raise BadAgentValue("the two PINs differ")
    return first


_run = cli_support.redis_command("agents", (BadAgentValue,))


@_run
def cmd_add(args, r: redis.Redis, config) -> int:
    number = check_number(args.number)
    if r.exists(keys.agent(number)):
        raise BadAgentValue(f"agent {number} exists (use set-pin / set-queues)")
    queues = parse_queue_spec(args.queues, set(config.queues))
    languages = tuple(x for x in args.languages.split(",") if x)
    bad = [x for x in languages if x not in config.company.languages]
    if bad:
        raise BadAgentValue(f"languages not configured: {','.join(bad)}")
    record = AgentRecord(number, queues, languages, args.name.strip()[:80], hash_pin(_pin(args)))
    with r.pipeline() as p:
        p.hset(keys.agent(number), mapping=record.to_hash())
        p.sadd(keys.AGENTS, number)
        p.execute()
    print(f"agent {number} added ({', '.join(f'{q}:{v}' for q, v in queues.items())})")
    return 0


@_run
def cmd_list(args, r: redis.Redis, config) -> int:
    logged_in = r.smembers(keys.AGENTS_LOGGED_IN)
    for number in sorted(r.smembers(keys.AGENTS)):
        record = AgentRecord.from_hash(number, r.hgetall(keys.agent(number)))
        if record is None:
            continue
        queues = ",".join(f"{q}:{p}" for q, p in sorted(record.queues.items()))
        print(f"{number}\t{queues}\t{','.join(record.languages) or '-'}\t"
              f"{'logged in' if number in logged_in else 'logged out'}\t{record.name}")
    return 0


@_run
def cmd_set_pin(args, r: redis.Redis, config) -> int:
    number = check_number(args.number)
    if not r.exists(keys.agent(number)):
        raise BadAgentValue(f"no agent {number}")
    r.hset(keys.agent(number), "pin", hash_pin(_pin(args)))
    r.delete(keys.agent_lock(number), keys.agent_pin_failures(number))
    print(f"agent {number}: PIN set")
    return 0


@_run
def cmd_set_queues(args, r: redis.Redis, config) -> int:
    number = check_number(args.number)
    if not r.exists(keys.agent(number)):
        raise BadAgentValue(f"no agent {number}")
    queues = parse_queue_spec(args.queues, set(config.queues))
    r.hset(keys.agent(number), "queues", json.dumps(queues, sort_keys=True))
    note = " (takes effect at the agent's next login)" if r.sismember(
        keys.AGENTS_LOGGED_IN, number) else ""
    print(f"agent {number}: queues set{note}")
    return 0


@_run
def cmd_remove(args, r: redis.Redis, config) -> int:
    number = check_number(args.number)
    if r.sismember(keys.AGENTS_LOGGED_IN, number):
        raise BadAgentValue(f"agent {number} is logged in; log out from the phone first")
    removed = r.delete(keys.agent(number))
    r.srem(keys.AGENTS, number)
    r.delete(keys.agent_lock(number), keys.agent_pin_failures(number))
    print(f"agent {number}: {'removed' if removed else 'not found'}")
    return 0 if removed else 1


@_run
def cmd_status(args, r: redis.Redis, config) -> int:
    now = time.time()
    for number in sorted(r.smembers(keys.AGENTS_LOGGED_IN)):
        session = AgentSession.from_hash(number, r.hgetall(keys.agent_session(number)))
        if session is None:
            continue
        states = r.hgetall(keys.agent_state(number))
        for queue in sorted(session.queues):
            ms = MemberState.from_json(states.get(queue, "")) or MemberState("logged_out")
            state = effective(ms, now, config.agents.wrapup_seconds)
            since = time.strftime("%H:%M:%S", time.localtime(ms.since)) if ms.since else "-"
            reason = f" ({ms.reason})" if state == "paused" and ms.reason else ""
            print(f"{number}\t{session.phone}\t{queue}\t{state}{reason}\tsince {since}")
    return 0


@_run
def cmd_allow_pause(args, r: redis.Redis, config) -> int:
    number = check_number(args.number)
    if not 1 <= args.minutes <= 480:
        raise BadAgentValue("--minutes must be 1..480")
    r.set(keys.agent_pause_override(number), "1", ex=args.minutes * 60)
    print(f"agent {number}: next pause allowed within {args.minutes} minutes")
    return 0
