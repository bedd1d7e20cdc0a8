"""`ccengine callers list|add|remove|block|unblock|import`: customers, VIPs and the blocklist.

Talks to Redis with the synchronous client (a CLI has no reactor), using the key names of
store/keys.py. `import` loads the same file formats as callers.blocklist_file / vip_file.
"""
from __future__ import annotations

import sys

import redis

from ccengine.calls.sources import NUMBER_RE, read_list
from ccengine.store import keys
from ccengine.cli import support as cli_support


def register(subparsers, config_arg) -> None:
    command = cli_support.command_group(subparsers, config_arg, "callers",
                                        "customers, VIPs and the blocklist",
                                        wrap=cli_support.redis_command("callers"))

    p = command("add", cmd_add, "add or update a customer")
    p.add_argument("number")
    p.add_argument("--name", default="")
    p.add_argument("--vip", action="store_true", help="a high-value customer (higher priority)")
    p.add_argument("--language", default="", help="preferred language, e.g. zh or en")
    p = command("remove", cmd_remove, "remove a customer record (and VIP status)")
    p.add_argument("number")
    p = command("block", cmd_block, "block numbers (polite message, no queue, still counted)")
    p.add_argument("numbers", nargs="+")
    p = command("unblock", cmd_unblock, "unblock numbers")
    p.add_argument("numbers", nargs="+")
    p = command("import", cmd_import, "load a blocklist or VIP file")
    p.add_argument("kind", choices=("blocklist", "vip"))
    p.add_argument("file")
    command("list", cmd_list, "list VIPs and blocked numbers")


def _numbers(values) -> list[str]:
    bad = [v for v in values if not NUMBER_RE.fullmatch(v)]
    if bad:
        print(f"not a phone number: {', '.join(repr(b[:40]) for b in bad)}", file=sys.stderr)
        raise SystemExit(2)
    return list(values)


def cmd_add(args, r, config) -> int:
    number = _numbers([args.number])[0]
    if args.language and args.language not in config.company.languages:
        print(f"language must be one of {', '.join(config.company.languages)}", file=sys.stderr)
        return 2
    tier = "vip" if args.vip else "known"
    with r.pipeline() as p:
        p.hset(keys.customer(number), mapping={"name": " ".join(args.name.split())[:80],
                                               "tier": tier, "language": args.language})
        (p.sadd if args.vip else p.srem)(keys.VIP, number)
        p.execute()
    print(f"{number}: {tier}")
    return 0


def cmd_remove(args, r, config) -> int:
    number = _numbers([args.number])[0]
    r.delete(keys.customer(number))
    r.srem(keys.VIP, number)
    print(f"{number}: removed")
    return 0


def cmd_block(args, r, config) -> int:
    added = r.sadd(keys.BLOCKLIST, *_numbers(args.numbers))
    print(f"{added} number(s) blocked")
    return 0


def cmd_unblock(args, r, config) -> int:
    removed = r.srem(keys.BLOCKLIST, *_numbers(args.numbers))
    print(f"{removed} number(s) unblocked")
    return 0


def cmd_import(args, r, config) -> int:
    loaded = load_into(r, args.kind, args.file)
    return 1 if loaded is None else 0


def load_into(r: redis.Redis, kind: str, path: str) -> int | None:
    """Load a file into Redis; prints problems; None when nothing could be read."""
    parsed = read_list(path, with_names=(kind == "vip"))
    for problem in parsed.problems:
        print(problem, file=sys.stderr)
    if not parsed.entries and parsed.problems:
        return None
    with r.pipeline() as p:
        for number, name in parsed.entries:
            if kind == "blocklist":
                p.sadd(keys.BLOCKLIST, number)
            else:
                p.sadd(keys.VIP, number)
                p.hset(keys.customer(number), mapping={"tier": "vip", **({"name": name} if name else {})})
        p.execute()
    print(f"{len(parsed.entries)} {kind} entr{'y' if len(parsed.entries) == 1 else 'ies'} loaded "
          f"from {path}, {len(parsed.problems)} problem(s)")
    return len(parsed.entries)


def cmd_list(args, r, config) -> int:
    for number in sorted(r.smembers(keys.VIP)):
        name = r.hget(keys.customer(number), "name") or ""
        print(f"vip      {number}  {name}")
    for number in sorted(r.smembers(keys.BLOCKLIST)):
        print(f"blocked  {number}")
    return 0
