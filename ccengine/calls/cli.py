"""`ccengine callers list|add|remove|block|unblock|import`: customers, VIPs and the blocklist.

Every write goes through calls/customers.py's CustomerStore, the store the engine uses, on the
Redis the engine uses (cli/support.py). `import` loads the same file formats as
callers.blocklist_file / vip_file.
"""
from __future__ import annotations

import sys

from ccengine.calls.customers import CustomerStore
from ccengine.calls.sources import NUMBER_RE, read_list
from ccengine.cli import output
from ccengine.cli import support as cli_support
from ccengine.cli.support import CommandError, wait


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
    command("reload", cmd_reload, "load callers.blocklist_file and vip_file into Redis again")
    p = command("list", cmd_list, "list customers (known and VIP) and blocked numbers")
    p.add_argument("--limit", type=int, default=10000, help="at most this many customer records")
    output.add_json_option(p)


def _numbers(values) -> list[str]:
    bad = [v for v in values if not NUMBER_RE.fullmatch(v)]
    if bad:
        raise CommandError(f"not a phone number: {', '.join(repr(b[:40]) for b in bad)}")
    return list(values)


async def cmd_add(args, conn, config) -> int:
    number = _numbers([args.number])[0]
    if args.language and args.language not in config.company.languages:
        raise CommandError(f"the language must be one of {', '.join(config.company.languages)}")
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
    """Load a file through the same store calls as the engine's caller lists at start. Lines
    that are not numbers are listed and skipped; the rest is loaded (exit 1 if any was bad)."""
    with open(args.file, "rb"):
        pass        # a file that cannot be opened at all is a usage error (exit 2), not a line
    parsed = read_list(args.file, with_names=(args.kind == "vip"))
    for problem in parsed.problems:
        print(problem, file=sys.stderr)
    customers = CustomerStore(conn)
    if parsed.entries and args.kind == "blocklist":
        await wait(customers.block([n for n, _ in parsed.entries]))
    elif parsed.entries:
        await wait(customers.mark_vips(parsed.entries))
    count = len(parsed.entries)
    print(f"{count} {args.kind} entr{'y' if count == 1 else 'ies'} loaded from {args.file}; "
          f"{len(parsed.problems)} line(s) refused.")
    return output.INPUT_PROBLEMS if parsed.problems else output.OK


async def cmd_reload(args, conn, config) -> int:
    """The engine's own loader (calls/feature.py) on the CLI's connection: the same files,
    the same checks, and the marker that tells every engine the lists are in."""
    from ccengine.calls.feature import CallerListsLoader
    if not (config.callers.blocklist_file or config.callers.vip_file):
        raise CommandError("no callers.blocklist_file or callers.vip_file in the configuration")
    loader = CallerListsLoader(config.callers, CustomerStore(conn))
    loaded = await wait(loader.load())
    print(f"Caller lists loaded: {', '.join(f'{n} {k}' for k, n in loaded.items()) or 'none'}.")
    if not loader.loaded:
        raise CommandError("not every list could be loaded (see the messages above)", 1)
    return output.OK


async def cmd_list(args, conn, config) -> int:
    rows = await wait(CustomerStore(conn).listing(args.limit))
    output.table(("number", "tier", "name", "language", "blocked"),
                 [(n, t, name, lang, "yes" if blocked else "no")
                  for n, t, name, lang, blocked in rows], args.json)
    return output.OK
