"""`ccengine complaints list|show|assign|resolve|close` (the lead lists this module in
cli.FEATURE_COMMANDS). Runs outside the engine with the same store and service code as the engine
(so the same checks and the same atomic transitions), through cli/support.py's store_command.

Redis: as every CLI finds it (ccengine/cli/support.py).
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

from prometheus_client import CollectorRegistry

from ccengine.complaints.followup import FollowUpScheduler
from ccengine.complaints.metrics import ComplaintMetrics
from ccengine.complaints.service import Complaints
from ccengine.complaints.store import TicketStore
from ccengine.complaints.tickets import LEVELS, STATES, TicketError, TicketNotFound
from ccengine.cli import output
from ccengine.cli import support as cli_support
from ccengine.cli.support import CommandError, wait


class _WallClock:
    """The CLI is an entry point, not domain code: it may read the wall clock."""

    @staticmethod
    def seconds() -> float:
        return time.time()


def register(subparsers: Any, config_arg: Any) -> None:
    command = cli_support.command_group(subparsers, config_arg, "complaints", "complaint tickets")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = command(name, run, help_text)
        parser.add_argument("--json", action="store_true", help="print JSON")
        return parser

    lst = add("list", "list tickets, newest first")
    lst.add_argument("--state", choices=(*STATES, "active"))
    lst.add_argument("--limit", type=int, default=50)
    add("show", "one ticket with its history").add_argument("ticket")
    assign = add("assign", "give a ticket an owner")
    assign.add_argument("ticket")
    assign.add_argument("owner")
    resolve = add("resolve", "record the outcome (schedules the follow-up call)")
    resolve.add_argument("ticket")
    resolve.add_argument("outcome")
    close = add("close", "close a ticket")
    close.add_argument("ticket")
    close.add_argument("--note", default="")
    for parser in (assign, resolve, close):
        parser.add_argument("--by", default="cli")


@cli_support.store_command("complaints")
async def run(args: argparse.Namespace, conn: Any, config: Any) -> int:
    clock = _WallClock()
    settings = config.complaints
    store = TicketStore(conn, settings.deadline_hours)
    complaints = Complaints(store, ComplaintMetrics(CollectorRegistry()), clock,
                            settings.deadline_hours,
                            FollowUpScheduler(conn, clock, settings.followup_after_hours))
    try:
        command = args.complaints_command
        if command == "list":
            found = await wait(store.list(args.state, args.limit))
            _print_list(found, args.json)
            return 0
        if command == "show":
            ticket = await wait(store.get(args.ticket))
        elif command == "assign":
            ticket = await wait(complaints.assign(args.ticket, args.owner, args.by))
        elif command == "resolve":
            ticket = await wait(complaints.resolve(args.ticket, args.outcome, args.by))
        else:
            ticket = await wait(complaints.close(args.ticket, args.by, args.note))
    except TicketNotFound as exc:
        raise CommandError(f"no ticket {exc}") from None
    except TicketError as exc:
        raise CommandError(f"ticket {getattr(args, 'ticket', '')}: {exc}") from None
    _print_ticket(ticket, args.json)
    return 0


def _print_list(found: list, as_json: bool) -> None:
    if as_json:
        print(json.dumps([t.to_json() for t in found], ensure_ascii=False, indent=1))
        return
    output.table(("id", "state", "level", "owner", "number", "deadline"),
                 [(t.id, t.state, t.level, t.owner, t.number,
                   time.strftime("%Y-%m-%d %H:%M", time.localtime(t.deadline))) for t in found])


def _print_ticket(ticket: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(ticket.to_json(), ensure_ascii=False, indent=1))
        return
    print(f"ticket {ticket.id}: {ticket.state}, level {ticket.level} "
          f"({LEVELS.index(ticket.level) + 1}/{len(LEVELS)}), owner {ticket.owner or '-'}")
    print(f"  caller {ticket.number or '-'} {ticket.customer}; queue {ticket.queue or '-'}, "
          f"category {ticket.category or '-'}; opened by {ticket.agent or '-'}")
    if ticket.outcome:
        print(f"  outcome: {ticket.outcome}")
    for h in ticket.history:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.get("at", 0)))
        rest = ", ".join(f"{k}={v}" for k, v in h.items() if k not in ("at", "event"))
        print(f"  {at}  {h.get('event')}  {rest}")
