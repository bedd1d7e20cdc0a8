"""`ccengine users add|remove|set-password|list`: the supervisor console's accounts.

Passwords are asked twice with getpass, or read from the first line of standard input with
`--password-stdin` (scripts); never from the command line, where `ps` would show them.
"""
from __future__ import annotations

import asyncio
import getpass
import sys

from ccengine.cli import output
from ccengine.cli import support as cli_support
from ccengine.cli.support import wait
from ccengine.console.accounts import (ROLES, Account, AccountStore, BadAccount, check_password,
                                       check_phone, check_role, check_user, hash_password)


def register(subparsers, config_arg) -> None:
    command = cli_support.command_group(subparsers, config_arg, "users",
                                        "supervisor console accounts")
    p = command("add", cmd_add, "add a console account")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=ROLES,
                   help="supervisor (watches and acts) or operations (watches only)")
    p.add_argument("--phone", default="", help="the supervisor's own PJSIP endpoint, rung "
                                               "for listen / whisper / barge")
    p.add_argument("--display", default="", help="name shown on the console")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p = command("set-password", cmd_set_password, "set an account's password")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true")
    p = command("remove", cmd_remove, "remove an account (its sessions end at once)")
    p.add_argument("name")
    output.add_json_option(command("list", cmd_list, "list the accounts"))


def _password(args) -> str:
    if args.password_stdin:
        return check_password(sys.stdin.readline().rstrip("\r\n"))
    first = getpass.getpass("password: ")
    if getpass.getpass("password again: ") != first:
        raise BadAccount("the two passwords differ")
    return check_password(first)


_run = cli_support.store_command("users", (BadAccount,))


@_run
async def cmd_add(args, conn, config) -> int:
    account = Account(check_user(args.name), check_role(args.role), check_phone(args.phone),
                      args.display.strip()[:80])
    if account.role == "supervisor" and not account.phone:
        print(f"ccengine users: note: {account.name} has no --phone: listen, whisper and barge "
              "will be refused", file=sys.stderr)
    password_hash = await asyncio.to_thread(hash_password, _password(args))
    if not await wait(_store(conn, config).add(account, password_hash)):
        raise BadAccount(f"user {account.name} exists (use set-password)")
    print(f"user {account.name} added ({account.role})")
    return 0


@_run
async def cmd_set_password(args, conn, config) -> int:
    name = check_user(args.name)
    password_hash = await asyncio.to_thread(hash_password, _password(args))
    if not await wait(_store(conn, config).set_password(name, password_hash)):
        raise BadAccount(f"no user {name}")
    print(f"password of {name} set")
    return 0


@_run
async def cmd_remove(args, conn, config) -> int:
    name = check_user(args.name)
    if not await wait(_store(conn, config).remove(name)):
        raise BadAccount(f"no user {name}")
    print(f"user {name} removed")
    return 0


@_run
async def cmd_list(args, conn, config) -> int:
    store = _store(conn, config)
    rows = []
    for name in sorted(await wait(store.names())):
        found = await wait(store.get(name))
        if found is not None:
            account = found[0]
            rows.append((account.name, account.role, account.phone, account.display))
    output.table(("user", "role", "phone", "display"), rows, args.json)
    return 0


def _store(conn, config) -> AccountStore:
    return AccountStore(conn, config.console.session_hours)
