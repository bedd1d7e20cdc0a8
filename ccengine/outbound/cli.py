"""`ccengine outbound load|list|pause|resume|stats`, through outbound/jobs.py's JobStore (the
store the engine's dialler uses, cli/support.py's store_command).

`load FILE.csv` reads a campaign: a header row, then one customer per row with the columns
`number` (required), `due` (ISO date-time with offset, or empty = now), `timezone` (empty =
the customer record's, else the centre's), `queue`, `language`. Every row is checked like a
callback number (waiting.numbers) before it becomes a job; refused rows are listed with their
line and reason and nothing else about them is written. Numbers on the blocklist or the
do-not-call list are skipped and listed. Loading is idempotent: a row's job id is derived from
kind, campaign, number, due time and queue (`row_job_id`), so loading a file again adds only
the rows that are new.
"""
from __future__ import annotations

import csv
import hashlib
import sys
import time
from datetime import datetime, UTC

from ccengine.calls.customers import CustomerStore
from ccengine.cli import output
from ccengine.cli import support as cli_support
from ccengine.cli.support import wait
from ccengine.outbound.jobs import KINDS, JobStore, new_job
from ccengine.outbound.windows import valid_zone
from ccengine.waiting.numbers import NumberRejected, check_callback_number

LOADABLE = ("survey", "callback")      # follow-ups come from the complaints feature only
PREFIX = {"survey": "sv", "callback": "cl"}
MAX_ROWS = 100_000


class CampaignError(ValueError):
    pass


def register(subparsers, config_arg) -> None:
    command = cli_support.command_group(subparsers, config_arg, "outbound",
                                        "outbound dialler: campaigns and jobs", wrap=_run)

    p = command("load", cmd_load, "load a campaign CSV (number,due,timezone,queue,language)")
    p.add_argument("file")
    p.add_argument("--kind", choices=LOADABLE, default="survey")
    p.add_argument("--campaign", default="csv", help="campaign name recorded as the origin")
    p = command("list", cmd_list, "list waiting jobs, earliest first")
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--limit", type=int, default=50)
    output.add_json_option(p)
    for name, func in (("pause", cmd_pause), ("resume", cmd_resume)):
        p = command(name, func, f"{name} dialling (one kind or all)")
        p.add_argument("kind", choices=(*KINDS, "all"))
    command("stats", cmd_stats, "jobs waiting, outside the window, in flight; paused kinds")


_run = cli_support.store_command("outbound", (CampaignError,))


def parse_row(row: dict, line: int, config, now: float) -> dict:
    """The checked values of one CSV row; raises CampaignError naming the line."""
    number = (row.get("number") or "").strip()
    try:
        check_callback_number(number, config.waiting)
    except NumberRejected as exc:
        raise CampaignError(f"line {line}: number refused ({exc.reason})") from None
    due_text = (row.get("due") or "").strip()
    try:
        due = datetime.fromisoformat(due_text).timestamp() if due_text else now
    except ValueError:
        raise CampaignError(f"line {line}: due is not an ISO date-time") from None
    if due_text and datetime.fromisoformat(due_text).tzinfo is None:
        raise CampaignError(f"line {line}: due needs a UTC offset (e.g. +08:00)")
    tz = (row.get("timezone") or "").strip()
    if tz and not valid_zone(tz):
        raise CampaignError(f"line {line}: unknown time zone")
    queue = (row.get("queue") or "").strip() or "outbound"
    if queue not in config.queues:
        raise CampaignError(f"line {line}: queue is not configured")
    language = (row.get("language") or "").strip()
    if language and language not in config.company.languages:
        raise CampaignError(f"line {line}: language is not configured")
    return {"number": number, "due": due, "tz": tz, "queue": queue, "language": language,
            "line": line, "due_given": bool(due_text)}


async def cmd_load(args, conn, config) -> int:
    now = time.time()
    campaign = args.campaign.strip()
    if not campaign or not all(c.isalnum() or c in "_-" for c in campaign) or len(campaign) > 40:
        raise CampaignError("--campaign: letters, digits, _ and - (max 40)")
    rows, refused = [], []
    with open(args.file, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "number" not in reader.fieldnames:
            raise CampaignError("the CSV needs a header row with a `number` column")
        for line, row in enumerate(reader, start=2):
            if line > MAX_ROWS + 1:
                raise CampaignError(f"more than {MAX_ROWS} rows")
            try:
                rows.append(parse_row(row, line, config, now))
            except CampaignError as exc:
                refused.append(str(exc))
    jobs, customers = JobStore(conn), CustomerStore(conn)
    loaded = again = 0
    skipped = []
    for values in rows:
        number = values["number"]
        if await wait(customers.is_blocked(number)) or await wait(jobs.do_not_call(number)):
            skipped.append(f"line {values['line']}: {number} is on the blocklist or the "
                           "do-not-call list")
            continue
        tz = values["tz"] or await wait(customers.timezone(number))
        if not valid_zone(tz):
            tz = config.company.timezone
        job = new_job(row_job_id(args.kind, campaign, values), args.kind, number,
                      values["due"], tz, origin=f"campaign:{campaign}", queue=values["queue"],
                      language=values["language"])
        if await wait(jobs.add(job)):
            loaded += 1
        else:
            again += 1
    for message in refused:
        print(f"refused: {message}", file=sys.stderr)
    for message in skipped:
        print(f"skipped: {message}", file=sys.stderr)
    print(f"Loaded {loaded} {args.kind} job(s) from {args.file}; {again} already loaded before, "
          f"{len(skipped)} skipped (blocklist or do-not-call), {len(refused)} refused.")
    return output.INPUT_PROBLEMS if refused else output.OK


def row_job_id(kind: str, campaign: str, values: dict) -> str:
    """The job id of one campaign row: the same kind, campaign, number, due time and queue give
    the same id, so loading a file twice dials nobody twice (while the job is kept: waiting,
    or 30 days after it finished)."""
    due_second = int(values["due"]) if values["due_given"] else "now"
    text = f"{kind}|{campaign}|{values['number']}|{due_second}|{values['queue']}"
    return f"{PREFIX[kind]}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


async def cmd_list(args, conn, config) -> int:
    kinds = [args.kind] if args.kind else list(KINDS)
    rows = [(datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%d %H:%M:%S"), job.kind, job.id,
             job.number, job.attempts, job.last_outcome)
            for due, job in await wait(JobStore(conn).waiting(kinds, args.limit))]
    output.table(("due_utc", "kind", "id", "number", "attempts", "last_outcome"), rows,
                 args.json)
    return 0


async def cmd_pause(args, conn, config) -> int:
    await wait(JobStore(conn).pause(args.kind))
    print(f"outbound dialling paused: {args.kind} (calls in progress finish normally)")
    return 0


async def cmd_resume(args, conn, config) -> int:
    paused = await wait(JobStore(conn).resume(None if args.kind == "all" else args.kind))
    print(f"outbound dialling resumed: {args.kind}; still paused: {', '.join(paused) or 'none'}")
    return 0


async def cmd_stats(args, conn, config) -> int:
    jobs = JobStore(conn)
    counts = await wait(jobs.counts())
    for kind in KINDS:
        print(f"{kind:<9} waiting {counts.waiting[kind]:>6}   outside window "
              f"{counts.outside[kind]:>6}")
    print(f"claimed/dialling {counts.processing}, Originates without outcome "
          f"{counts.inflight}, finished (kept 30 days) {await wait(jobs.done_count())}")
    print(f"paused: {', '.join(await wait(jobs.paused())) or 'none'}")
    return 0
