"""`ccengine callers list|add|remove|block|unblock|import`: customers, VIPs and the blocklist.

Every write goes through calls/customers.py's CustomerStore, the store the engine uses, on the
Redis the engine uses (cli/support.py). `import` loads the same file formats as
callers.blocklist_file / vip_file.
"""
from __future__ import annotations

import sys

from ccengine.calls.customers import CustomerStore
from ccengine.calls.sources import NUMBER_RE, read_list
from ccengine.cli import support as cli_support
from ccengine.cli.support import wait


def register(subparsers, config_arg) -> None:
    command = cli_support.command_group(subparsers, config_arg, "callers",
                                        "customers, VIPs and the blocklist",
                                        wrap=cli_support.store_command("callers"))

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


async def cmd_add(args, conn, config) -> int:
    number = _numbers([args.number])[0]
    if args.language and args.language not in config.company.languages:
        print(f"language must be one of {', '.join(config.company.languages)}", file=sys.stderr)
        return 2
    tier = "vip" if args.vip else "known"
    await wait(CustomerStore(conn).put_customer(number, args.name, tier, args.language))
    print(f"{number}: {tier}")
    return 0


async def cmd_remove(args, conn, config) -> int:
    number = _numbers([args.number])[0]
    await wait(CustomerStore(conn).remove_customer(number))
    print(f"{number}: removed")
    return 0


async def cmd_block(args, conn, config) -> int:
    added = await wait(CustomerStore(conn).block(_numbers(args.numbers)))
    print(f"{added} number(s) blocked")
    return 0


async def cmd_unblock(args, conn, config) -> int:
    removed = await wait(CustomerStore(conn).unblock(_numbers(args.numbers)))
    print(f"{removed} number(s) unblocked")
    return 0


async def cmd_import(args, conn, config) -> int:
    """Load a file through the same store calls as the engine's caller lists at start."""
    parsed = read_list(args.file, with_names=(args.kind == "vip"))
    for problem in parsed.problems:
        print(problem, file=sys.stderr)
    if not parsed.entries and parsed.problems:
        return 1
    customers = CustomerStore(conn)
    if args.kind == "blocklist":
        await wait(customers.block([n for n, _ in parsed.entries]))
    else:
        await wait(customers.mark_vips(parsed.entries))
    print(f"{len(parsed.entries)} {args.kind} entr{'y' if len(parsed.entries) == 1 else 'ies'} "
          f"loaded from {args.file}, {len(parsed.problems)} problem(s)")
    return 0


async def cmd_list(args, conn, config) -> int:
    vips, blocked = await wait(CustomerStore(conn).listing())
    for number, name in vips:
        print(f"vip      {number}  {name}")
    for number in blocked:
        print(f"blocked  {number}")
    return 0
