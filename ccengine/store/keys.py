"""Every Redis key ccengine uses, in one place. Prefix `cc:`.

Numbers that reach a key are validated first (digits, '+' and at most 32 characters), so a
hostile caller ID cannot address another key or build an enormous one.
"""
from __future__ import annotations

import re

PREFIX = "cc:"
_NUMBER_RE = re.compile(r"^\+?[0-9]{1,32}$")
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BadKeyPart(ValueError):
    """A value that must not become part of a key."""


def number_part(number: str) -> str:
    if not _NUMBER_RE.fullmatch(number):
        raise BadKeyPart(f"not a phone number: {number[:40]!r}")
    return number


def id_part(value: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise BadKeyPart(f"not an id: {value[:70]!r}")
    return value


# --- callers (core) --------------------------------------------------------------------------
def customer(number: str) -> str:
    """Hash: name, tier (vip|known), language."""
    return f"{PREFIX}customer:{number_part(number)}"


def customer_pattern() -> str:
    """SCAN pattern of every customer hash (admin listings only)."""
    return f"{PREFIX}customer:*"


CALLER_LISTS_LOADED = f"{PREFIX}callerlists:loaded"   # set after the list files are loaded
BLOCKLIST = f"{PREFIX}blocklist"          # set of numbers
VIP = f"{PREFIX}vip"                      # set of numbers


# --- call records (core) ---------------------------------------------------------------------
def call(call_id: str) -> str:
    """Hash: the call record (see calls/records.py)."""
    return f"{PREFIX}call:{id_part(call_id)}"


CALLS = f"{PREFIX}calls"                  # sorted set: call id by start time, trimmed


# --- waiting callers and callbacks (issue 3, ccengine/waiting/) ------------------------------
# Queue names reaching these keys come from the configuration (QUEUE_NAME_RE), never a caller.
def line(queue: str) -> str:
    """Sorted set: the queue's line in service order. Members `call:{uniqueid}` (a caller in
    the queue) and `cb:{callback id}` (a pending callback); score = -(Asterisk queue priority),
    so ZRANK is the number of entries served before this one."""
    return f"{PREFIX}line:{id_part(queue)}"


def line_seen(queue: str) -> str:
    """Hash: line member -> last time (engine clock) a waiting caller was announced; members not
    refreshed for a few announcement periods are swept (the caller left unseen)."""
    return f"{PREFIX}line:seen:{id_part(queue)}"


def line_entry(queue: str, uniqueid: str) -> str:
    """Hash of one waiting caller: priority (its QUEUE_PRIO), joined (first queue entry, epoch)."""
    return f"{PREFIX}line:entry:{id_part(queue)}:{id_part(uniqueid)}"


def callback(callback_id: str) -> str:
    """Hash: one CallbackRequest (see waiting/callbacks.py)."""
    return f"{PREFIX}callback:{id_part(callback_id)}"


def callback_open(number: str) -> str:
    """String: id of the open callback for a number (one open callback per number)."""
    return f"{PREFIX}callback:open:{number_part(number)}"


def callbacks_ready(queue: str) -> str:
    """Sorted set: callback ids waiting for the dialler, score = -priority (service order)."""
    return f"{PREFIX}callbacks:ready:{id_part(queue)}"


CALLBACK_SEQ = f"{PREFIX}callback:seq"            # counter for callback ids
CALLBACKS_PROCESSING = f"{PREFIX}callbacks:processing"  # sorted set: claimed ids, score = claim time
CALLBACKS_EXPIRY = f"{PREFIX}callbacks:expiry"    # sorted set: open ids by expiry time
CALLBACKS_DONE = f"{PREFIX}callbacks:done"        # sorted set: finished ids by finish time, trimmed
DNC = f"{PREFIX}dnc"                              # set of numbers: do-not-call list


def aht(queue: str) -> str:
    """List: the queue's most recent talk times in seconds (newest first, trimmed to the window)."""
    return f"{PREFIX}aht:{id_part(queue)}"


# --- agents on SIP phones (issue 4, ccengine/agents/) ----------------------------------------
# Agent numbers are digits (number_part); phones are PJSIP endpoint names (id_part); queue
# names come from the configuration or from Asterisk events and are checked with id_part.
AGENTS = f"{PREFIX}agents"                        # set of agent numbers in the directory
AGENTS_LOGGED_IN = f"{PREFIX}agents:logged_in"    # set of agent numbers with a session
ASTERISK_BOOT = f"{PREFIX}asterisk:boot"          # hash: uptime (last FullyBooted), restart_pending


def asterisk_boot(server: str | None) -> str:
    """ASTERISK_BOOT of one Asterisk server; the plain key for the default name of the one
    server (config ami.name), as before there could be several."""
    return ASTERISK_BOOT if server in (None, "", "asterisk") else f"{ASTERISK_BOOT}:{server}"


def agent(number: str) -> str:
    """Hash: pin (pbkdf2 hash string), queues (JSON {queue: penalty}), languages, name."""
    return f"{PREFIX}agent:{number_part(number)}"


AGENT_SESSION_PREFIX = f"{PREFIX}agent:session:"


def agent_session(number: str) -> str:
    """Hash: the agent's login: phone, interface, since, queues (JSON {queue: penalty})."""
    return f"{AGENT_SESSION_PREFIX}{number_part(number)}"


def agent_phone(phone: str) -> str:
    """String: the agent number logged in on that phone (PJSIP endpoint)."""
    return f"{PREFIX}agent:phone:{id_part(phone)}"


AGENT_STATE_PREFIX = f"{PREFIX}agent:state:"


def agent_state(number: str) -> str:
    """Hash: queue -> JSON {state, reason, since} mirrored from AMI events and QueueStatus."""
    return f"{AGENT_STATE_PREFIX}{number_part(number)}"


def agent_pin_failures(number: str) -> str:
    """Counter (TTL lockout_seconds): wrong PINs in a row."""
    return f"{PREFIX}agent:pinfail:{number_part(number)}"


def phone_pin_attempts(phone: str) -> str:
    """Counter with TTL: PIN attempts made from one phone (any agent number)."""
    return f"{PREFIX}agent:phoneattempts:{id_part(phone)}"


def agent_lock(number: str) -> str:
    """String with TTL: present while the agent is locked after too many wrong PINs."""
    return f"{PREFIX}agent:lock:{number_part(number)}"


def agent_no_answer(number: str) -> str:
    """Counter: AgentRingNoAnswer in a row (reset by AgentConnect and by a pause)."""
    return f"{PREFIX}agent:noanswer:{number_part(number)}"


def agent_pause_override(number: str) -> str:
    """String with TTL: a supervisor allowed this agent's next pause despite the staffing guard."""
    return f"{PREFIX}agent:pauseok:{number_part(number)}"


# --- complaints (issue 5, ccengine/complaints/) ----------------------------------------------
# Ticket ids are decimal numbers from COMPLAINT_SEQ (read to callers digit by digit).
def complaint(ticket_id: str) -> str:
    """Hash: one ComplaintTicket (see complaints/tickets.py for the fields)."""
    return f"{PREFIX}complaint:{id_part(ticket_id)}"


def complaint_history(ticket_id: str) -> str:
    """List: the ticket's history, one JSON object per change, oldest first."""
    return f"{PREFIX}complaint:history:{id_part(ticket_id)}"


def complaints_by_number(number: str) -> str:
    """Sorted set: ticket ids of a caller number, score = opened (repeat complainants)."""
    return f"{PREFIX}complaints:number:{number_part(number)}"


def complaint_moved(uniqueid: str) -> str:
    """String with TTL: this waiting caller was already moved to the supervisor queue."""
    return f"{PREFIX}complaints:moved:{id_part(uniqueid)}"


COMPLAINT_SEQ = f"{PREFIX}complaints:seq"            # counter for ticket ids
COMPLAINTS_ALL = f"{PREFIX}complaints:all"           # sorted set: every ticket id by opened
COMPLAINTS_OPEN = f"{PREFIX}complaints:open"         # sorted set: open/escalated ids by deadline
COMPLAINTS_DUE = f"{PREFIX}complaints:due"           # sorted set: ids the sweeper still escalates, by deadline
COMPLAINTS_OUTBOX = f"{PREFIX}complaints:outbox"     # list: JSON notifications not yet sent to AMI
COMPLAINTS_TRANSFERS = f"{PREFIX}complaints:transfers"  # hash: caller channel -> JSON warm escalation in progress
# Follow-up calls for the outbound dialler (issue 6); format in docs/complaints.md.
OUTBOUND_FOLLOWUPS = f"{PREFIX}outbound:followups"   # sorted set: job ids by not-before time


def outbound_followup(job_id: str) -> str:
    """Hash: one follow-up call job (docs/complaints.md, "Follow-up jobs")."""
    return f"{PREFIX}outbound:followup:{id_part(job_id)}"


# --- outbound dialler (issue 6, ccengine/outbound/) ------------------------------------------
# Job ids are `<kind prefix>-<digits or origin id>` (id_part); kinds are a fixed list
# (outbound/jobs.py KINDS). The do-not-call list is DNC above, shared with the waiting feature.
def outbound_job(job_id: str) -> str:
    """Hash: one dialler job (see outbound/jobs.py for the fields)."""
    return f"{PREFIX}outbound:job:{id_part(job_id)}"


def outbound_attempts(job_id: str) -> str:
    """List: the job's attempts, one JSON object each, oldest first."""
    return f"{PREFIX}outbound:attempts:{id_part(job_id)}"


def outbound_due(kind: str) -> str:
    """Sorted set: waiting job ids of a kind, score = not before (epoch seconds)."""
    return f"{PREFIX}outbound:due:{id_part(kind)}"


def outbound_outside(kind: str) -> str:
    """Sorted set: the waiting jobs of a kind that were due but outside the calling window,
    score = next opening (a subset of outbound_due, for the jobs_outside_window gauge)."""
    return f"{PREFIX}outbound:outside:{id_part(kind)}"


def outbound_number_guard(number: str) -> str:
    """String with TTL: a dial to this number started less than per_number_interval ago."""
    return f"{PREFIX}outbound:number:{number_part(number)}"


def outbound_agent_hold(agent: str) -> str:
    """String with TTL: this agent is reserved for one outbound dial (value = job id)."""
    return f"{PREFIX}outbound:hold:{number_part(agent)}"


OUTBOUND_PROCESSING = f"{PREFIX}outbound:processing"   # sorted set: claimed ids, score = lease end
OUTBOUND_INFLIGHT = f"{PREFIX}outbound:inflight"       # hash: ChannelId -> job id (Originate sent)
OUTBOUND_RATE = f"{PREFIX}outbound:rate"               # sorted set: dial starts (member = ChannelId)
OUTBOUND_PAUSED = f"{PREFIX}outbound:paused"           # set of paused kinds ('all' pauses every kind)
OUTBOUND_DONE = f"{PREFIX}outbound:done"               # sorted set: finished ids by finish time, trimmed
OUTBOUND_HOLDS = f"{PREFIX}outbound:holds"             # sorted set: held agent numbers, score = hold end
COMPLAINTS_OUTBOX_LOCK = f"{PREFIX}complaints:outbox:lock"  # string with TTL: one sender of the outbox at a time


# --- supervisor console (ccengine/console/, docs/console.md) ----------------------------------
# User names are console/accounts.py USER_RE; session keys hold a SHA-256 of the cookie (hex),
# never the cookie itself; days are YYYYMMDD in the centre's time zone.
CONSOLE_USERS = f"{PREFIX}console:users"             # set of user names
CONSOLE_AUDIT = f"{PREFIX}console:audit"             # list: JSON audit entries, newest first, trimmed


def console_user(name: str) -> str:
    """Hash: role, password (argon2 hash), phone, display name."""
    return f"{PREFIX}console:user:{id_part(name)}"


def console_session(digest: str) -> str:
    """Hash with TTL: user, csrf, created."""
    return f"{PREFIX}console:session:{id_part(digest)}"


def console_login_failures(who: str) -> str:
    """Counter with TTL: failed logins of a user name or a client address ('ip-<addr>')."""
    return f"{PREFIX}console:loginfail:{id_part(who)}"


def console_day(day: str, queue: str) -> str:
    """Hash with TTL: today's counters of a queue (offered, answered, within_sl, abandoned,
    wait_sum, talk_sum, talked)."""
    return f"{PREFIX}console:day:{id_part(day)}:{id_part(queue)}"


def console_handled(day: str) -> str:
    """Hash with TTL: agent number -> calls completed that day."""
    return f"{PREFIX}console:handled:{id_part(day)}"
