"""`ccengine ami-check`: log in to Asterisk's AMI once with the engine's settings and report.

An admin runs it while setting up Asterisk: connect (banner), Login, Ping, QueueSummary, Logoff,
each printed as `OK <step>: ...` or `FAIL <step>: <reason>` with a hint. Exit 0 when every step
passes, 1 when one fails, 2 for a configuration problem or a missing/unsafe secret.

This is the one place pyst2 (`asterisk.manager`, the design card's AMI library) is used. It is
blocking and unbounded: threads, blocking sockets, no timeouts, and it writes field values raw.
Hence a top-level module rather than `ccengine/ami/` (the Twisted client): nothing here may be
imported by the reactor side, and the engine never uses pyst2 (docs/architecture.md, "pyst2").
Its dangers are contained as follows:
- username and secret pass `ami.wire.Action`'s CR/LF/NUL check before pyst2 sees them;
- the whole pyst2 session runs in a daemon thread; the main thread waits for each step's
  result with the timeout and returns on its own, so a stuck pyst2 call cannot hold the process;
- the socket pyst2 creates gets the timeout too (`socket.setdefaulttimeout` while it connects),
  so its reader thread gives up after that much silence instead of blocking forever.
"""
from __future__ import annotations

import argparse
import errno
import queue
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from asterisk.manager import (Manager, ManagerAuthException, ManagerException,
                              ManagerSocketException)

from ccengine.ami.wire import Action, UnsafeAmiValue
from ccengine.cli.support import config_or_report

STEPS = ("connect", "login", "ping", "queuesummary", "logoff")
BANNER_TITLE = "Asterisk Call Manager"  # transcripts2 AMI note 1: `Asterisk Call Manager/11.0.0`

HINT_REFUSED = ("nothing accepts connections there: check manager.conf [general] enabled = yes, "
                "bindaddr and port, and ami.host/ami.port of the configuration")
HINT_SILENT = ("something accepted the connection but sent no AMI banner (or nothing answers at "
               "all): is ami.port Asterisk's manager port? a firewall dropping packets?")
HINT_SLOW = "Asterisk stopped answering: is it overloaded, or a proxy in between?"
HINT_DENIED = "Ping and QueueSummary need no class: compare manager.conf with docs/operations.md"


@dataclass(frozen=True)
class AmiTarget:
    host: str
    port: int
    username: str
    secret: str
    secret_source: str  # what the admin should check when the login fails, never the secret

    def __repr__(self) -> str:  # keep the secret out of tracebacks and logs
        return f"AmiTarget({self.host}:{self.port}, username={self.username!r})"


@dataclass(frozen=True)
class Outcome:
    step: str
    ok: bool
    detail: str
    hint: str = ""
    note: str = ""


class _StepFailed(Exception):
    def __init__(self, reason: str, hint: str = ""):
        super().__init__(reason)
        self.reason, self.hint = reason, hint


def register(subparsers, config_arg) -> None:
    p = subparsers.add_parser("ami-check", help="log in to Asterisk's AMI once and report "
                                                "(connect, Login, Ping, QueueSummary, Logoff)")
    config_arg(p)
    p.add_argument("--timeout", type=_seconds, default=None, metavar="S",
                   help="seconds to wait for each step (default: ami.action_timeout)")
    p.set_defaults(func=cmd_ami_check)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 3600 seconds")
    return value


def cmd_ami_check(args: argparse.Namespace) -> int:
    config = config_or_report(args)
    if config is None:
        return 2
    try:
        secret = config.ami_secret()
    except (OSError, UnicodeError) as exc:
        print(f"ami.secret_file: cannot read {config.ami.secret_file}: "
              f"{getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    source = (f"ami.secret_file ({config.ami.secret_file})" if config.ami.secret_file
              else config.ami.secret_env)
    if secret is None:
        print(f"no AMI secret: set {source} (the secret of [{config.ami.username}] in "
              "manager.conf)", file=sys.stderr)
        return 2
    try:
        # pyst2 writes `Username: %s` / `Secret: %s` raw: a CR/LF would end the Login early and
        # start another action. Action() applies the engine's own AMI value check.
        Action("Login", [("Username", config.ami.username), ("Secret", secret)])
    except UnsafeAmiValue as exc:
        print(f"refused before connecting: {exc} (check ami.username and {source})",
              file=sys.stderr)
        return 2
    if not config.ami.enabled:
        print(f"note: ami.enabled is false in {config.source}; checking the account anyway")
    target = AmiTarget(config.ami.host, config.ami.port, config.ami.username, secret, source)
    timeout = args.timeout if args.timeout is not None else config.ami.action_timeout
    return run_check(target, timeout, expected_queues=sorted(config.queues))


def run_check(target: AmiTarget, timeout: float, expected_queues: Iterable[str] = (),
              write: Callable[[str], None] = print,
              manager_factory: Callable[[], Manager] = Manager) -> int:
    """Run the steps in a daemon thread; wait at most `timeout` seconds for each. 0 or 1."""
    results: queue.Queue[Outcome] = queue.Queue()
    worker = threading.Thread(target=_session,
                              args=(target, timeout, tuple(expected_queues), results,
                                    manager_factory),
                              name="ccengine-ami-check", daemon=True)
    previous = socket.getdefaulttimeout()
    # Process-wide, but only until the connect step reports: pyst2 creates its socket first
    # thing in connect() and offers no other way to give it a timeout.
    socket.setdefaulttimeout(timeout)
    try:
        worker.start()
        for step in STEPS:
            try:
                outcome = results.get(timeout=timeout)
            except queue.Empty:
                hint = HINT_SILENT if step == "connect" else HINT_SLOW
                outcome = Outcome(step, False, f"no answer within {timeout:g} s", hint)
            finally:
                socket.setdefaulttimeout(previous)
            _report(outcome, write)
            if not outcome.ok:
                return 1
    finally:
        socket.setdefaulttimeout(previous)
    worker.join(timeout)  # it only waits for Asterisk to close after Goodbye
    return 0


def _report(outcome: Outcome, write: Callable[[str], None]) -> None:
    write(f"{'OK' if outcome.ok else 'FAIL'} {outcome.step}: {_shown(outcome.detail)}")
    if outcome.note:
        write(f"  note: {_shown(outcome.note)}")
    if outcome.hint:
        write(f"  hint: {_shown(outcome.hint)}")


def _shown(text: str, limit: int = 300) -> str:
    """Server-supplied text made safe for a terminal (no escape sequences, bounded length)."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[:limit] + "..."


def _session(target: AmiTarget, timeout: float, expected_queues: tuple[str, ...],
             results: queue.Queue, manager_factory: Callable[[], Manager] = Manager) -> None:
    """The pyst2 session (worker thread): one Outcome per step, stops at the first failure."""
    manager = manager_factory()
    step = "connect"
    try:
        results.put(Outcome(step, True, _connect(manager, target)))
        step = "login"
        results.put(Outcome(step, True, _login(manager, target)))
        step = "ping"
        results.put(Outcome(step, True, _ping(manager)))
        step = "queuesummary"
        queues = _queue_summary(manager, timeout)
        missing = [name for name in expected_queues if name not in queues]
        note = (f"configured queues Asterisk does not report: {', '.join(missing)} "
                "(check queues.conf; Queue() would fail for them)") if missing else ""
        results.put(Outcome(step, True, f"{len(queues)} queue(s): {', '.join(queues)}", note=note))
        step = "logoff"
        results.put(Outcome(step, True, _logoff(manager, timeout)))
    except _StepFailed as exc:
        results.put(Outcome(step, False, exc.reason, exc.hint))
    except ManagerSocketException as exc:
        results.put(_socket_failure(step, exc, timeout, target))
    except ManagerException as exc:
        results.put(Outcome(step, False, f"pyst2: {exc}"))
    except ValueError as exc:
        if manager.connected():
            results.put(Outcome(step, False, f"unexpected ValueError: {exc}"))
        elif step == "logoff":
            # pyst2 race: send_action() writes, then flush()es; when Asterisk answers Logoff and
            # closes at once (ami4 c1), pyst2's reader thread may close the file in between and
            # flush() raises "I/O operation on closed file". The Logoff was sent and the
            # session is over, which is all this step checks.
            results.put(Outcome(step, True, "connection closed by Asterisk"))
        else:  # the same race after another action: Asterisk closed the connection
            results.put(Outcome(step, False, "Asterisk closed the connection",
                                _closed_hint(step, target)))
    except Exception as exc:  # reported as this step's failure, with its type
        results.put(Outcome(step, False, f"unexpected {type(exc).__name__}: {exc}"))


def _socket_failure(step: str, exc: ManagerSocketException, timeout: float,
                    target: AmiTarget) -> Outcome:
    code, text = (exc.args + (None, None))[:2]
    if code == errno.ECONNREFUSED:
        return Outcome(step, False, "connection refused", HINT_REFUSED)
    if code is None:  # socket.timeout carries no errno; pyst2 keeps only errno and strerror
        return Outcome(step, False, f"no answer within {timeout:g} s",
                       HINT_SILENT if step == "connect" else HINT_SLOW)
    if code == 0:  # pyst2's own 'Connection Terminated': EOF while waiting for a response
        return Outcome(step, False, "Asterisk closed the connection", _closed_hint(step, target))
    return Outcome(step, False, f"{text or 'socket error'} (errno {code})",
                   HINT_REFUSED if step == "connect" else HINT_SLOW)


def _closed_hint(step: str, target: AmiTarget) -> str:
    if step == "login":  # Asterisk closes the session after a failed Login (ami4 c2)
        return _login_hint(target)
    return HINT_SILENT if step == "connect" else HINT_SLOW


def _login_hint(target: AmiTarget) -> str:
    return (f"check {target.secret_source} against the secret of [{target.username}] in "
            "manager.conf (ami.username), and that user's permit/deny; Asterisk's log names the "
            "cause; `manager reload` after a change")


def _connect(manager: Manager, target: AmiTarget) -> str:
    manager.connect(target.host, target.port)
    if manager.title != BANNER_TITLE:
        raise _StepFailed(f"unexpected banner {manager.title!r}", HINT_SILENT)
    return f"{manager.title}/{manager.version} at {target.host}:{target.port}"


def _login(manager: Manager, target: AmiTarget) -> str:
    try:
        response = manager.login(target.username, target.secret)
    except ManagerAuthException as exc:
        # Asterisk answers a wrong secret, an unknown user and a permit/deny refusal alike
        # (main/manager.c authenticate(); its log names the cause), after a 1 s delay (ami4 c2).
        raise _StepFailed(str(exc) or "Authentication failed", _login_hint(target)) from None
    return response.get_header("Message", "logged in")


def _ping(manager: Manager) -> str:
    response = manager.ping()
    if response.get_header("Response") != "Success":
        raise _StepFailed(_error_text(response), HINT_DENIED)
    return response.get_header("Ping", "Success")


def _queue_summary(manager: Manager, timeout: float) -> list[str]:
    """QueueSummary (what the engine reads queue state with): response, then one event per queue
    and QueueSummaryComplete, all carrying our ActionID (d_queuestatus_idle)."""
    action_id = "ccengine-ami-check-queuesummary"
    queues: list[str] = []
    complete = threading.Event()

    def collect(event, _manager) -> None:
        if event.get_header("ActionID") != action_id:
            return
        if event.name == "QueueSummary":
            queues.append(event.get_header("Queue", "?"))
        else:
            complete.set()

    manager.register_event("QueueSummary", collect)
    manager.register_event("QueueSummaryComplete", collect)
    # A fresh dict on every call: pyst2's send_action(cdict={}) mutates its default argument.
    response = manager.send_action({"Action": "QueueSummary", "ActionID": action_id})
    if response.get_header("Response") != "Success":
        raise _StepFailed(_error_text(response), HINT_DENIED)
    if not complete.wait(timeout):
        raise _StepFailed(f"no QueueSummaryComplete within {timeout:g} s", HINT_SLOW)
    return queues


def _logoff(manager: Manager, timeout: float) -> str:
    response = manager.logoff()
    if response.get_header("Response") != "Goodbye":
        raise _StepFailed(_error_text(response))
    # Asterisk closes after Goodbye (ami4 c1); pyst2's threads end at that EOF.
    manager.message_thread.join(timeout)
    return "Goodbye" if not manager.message_thread.is_alive() else "Goodbye (still connected)"


def _error_text(response) -> str:
    return (f"{response.get_header('Response', 'no Response')}: "
            f"{response.get_header('Message', '(no message)')}")
