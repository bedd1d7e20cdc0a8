"""Grep-style safety checks of dialplans/ and deploy/asterisk/ (issue 8 items 7, 8, 14, 15).

A small parser reads `exten =>` / `same =>` lines into steps (context, extension, label,
application, data). On top of it:

* taint: every `${...}` in an application's arguments must be harmless. Caller data
  (`EXTEN`, `CALLERID(...)`, any other function) and engine data (`CC_*`) are harmless only
  inside FILTER()/LEN()/DIALPLAN_EXISTS(); a dialplan variable is harmless when every
  assignment of it (Set(), [globals]) is itself harmless; GLOBAL(NAME) is harmless when NAME
  is a literal global. Only logging apps (NoOp, Verbose, Log) and Set are exempt (a Set value
  is checked where the variable is used).
* structure: the hotline trusts only CC_ROUTE_OK=1 and falls back to a plain Queue(inbound);
  the hold loop skips the announcement, never the queue, when the engine does not answer.
* secrets: no credential-looking value in deploy/ or dialplans/ except placeholders.

Each rule has a negative test feeding a bad snippet to the checker.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIALPLANS = ROOT / "dialplans"
DEPLOY = ROOT / "deploy"

SANITIZERS = {"FILTER", "LEN", "DIALPLAN_EXISTS"}
# Set by Asterisk itself from configuration or fixed vocabularies, never by a caller.
TRUSTED_ASTERISK_VARS = {"QUEUESTATUS", "AGISTATUS", "DIALSTATUS", "MEMBERINTERFACE", "EPOCH"}
EXEMPT_APPS = {"noop", "verbose", "log", "set", "mset"}


@dataclass(frozen=True)
class Step:
    where: str
    context: str
    exten: str
    label: str | None
    app: str
    data: str


@dataclass
class Dialplan:
    steps: list[Step]
    globals: dict[str, str]


def _strip_comment(line: str) -> str:
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            out.append(line[i:i + 2])
            i += 2
            continue
        if line[i] == ";":
            break
        out.append(line[i])
        i += 1
    return "".join(out).strip()


def parse_dialplan(text: str, name: str = "<text>") -> Dialplan:
    """Parse extensions.conf-style text into steps and [globals] assignments."""
    steps: list[Step] = []
    glob: dict[str, str] = {}
    context, exten = "", ""
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = _strip_comment(raw)
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if header:
            context = header.group(1)
            continue
        m = re.fullmatch(r"(exten|same)\s*=>?\s*(.*)", line)
        if not m:
            if context == "globals" and "=" in line:
                key, value = line.split("=", 1)
                glob[key.strip()] = value.strip()
            continue
        rest = m.group(2)
        if m.group(1) == "exten":
            exten, rest = rest.split(",", 1)
        prio, app_part = rest.split(",", 1)
        label = re.search(r"\((.*)\)", prio)
        app = re.fullmatch(r"\s*([A-Za-z0-9_]+)\s*(?:\((.*)\))?\s*", app_part, re.S)
        assert app, f"{name}:{lineno}: cannot parse application in {raw!r}"
        steps.append(Step(f"{name}:{lineno}", context, exten.strip(),
                          label.group(1) if label else None, app.group(1), app.group(2) or ""))
    return Dialplan(steps, glob)


def _expressions(text: str) -> list[str]:
    """Inner text of each top-level ${...} in text (nested braces balanced)."""
    found, i = [], 0
    while (start := text.find("${", i)) != -1:
        depth, j = 0, start + 1
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        found.append(text[start + 2:j])
        i = j + 1
    return found


def _set_assignments(data: str) -> list[tuple[str, str]]:
    """(name, value) of every Set(NAME=value) in data, also inside ExecIf().

    Leading underscores only mark inheritance (Set(__X=...) sets X), so they are dropped.
    """
    pairs = []
    for m in re.finditer(r"(?:^|[?:(])Set\(([A-Za-z0-9_]+)=", data):
        depth, j = 1, m.end()
        while j < len(data) and depth:
            depth += {"(": 1, ")": -1}.get(data[j], 0)
            j += 1
        pairs.append((m.group(1).lstrip("_"), data[m.end():j - 1]))
    return pairs


def _never_clean(name: str) -> bool:
    return name == "EXTEN" or name.startswith(("CC_", "CALLERID"))


class TaintChecker:
    def __init__(self, plan: Dialplan):
        self.globals = {k for k, v in plan.globals.items() if "${" not in v and "$[" not in v}
        assignments: dict[str, list[str]] = {}
        for step in plan.steps:
            data = f"{step.app}({step.data})" if step.app.lower() == "set" else step.data
            for name, value in _set_assignments(data):
                assignments.setdefault(name, []).append(value)
        for name, value in plan.globals.items():
            assignments.setdefault(name, []).append(value)
        self.clean: set[str] = set()
        changed = True
        while changed:  # least fixpoint: a variable is clean once all its values are
            changed = False
            for name, values in assignments.items():
                if name in self.clean or _never_clean(name):
                    continue
                if all(not self.tainted(v) for v in values):
                    self.clean.add(name)
                    changed = True

    def tainted(self, text: str) -> list[str]:
        """The ${...} expressions of text that may carry caller or engine data."""
        bad = []
        for inner in _expressions(text):
            func = re.fullmatch(r"([A-Z_]+)\((.*)\)", inner, re.S)
            if func:
                fname, args = func.groups()
                if fname in SANITIZERS:
                    continue
                if fname == "GLOBAL" and args in self.globals:
                    continue
                bad.append(inner)
                continue
            name = inner.split(":", 1)[0]
            if name in TRUSTED_ASTERISK_VARS or (name in self.clean and not _never_clean(name)):
                continue
            bad.append(inner)
        return bad

    def violations(self, plan: Dialplan) -> list[str]:
        out = []
        for step in plan.steps:
            if step.app.lower() in EXEMPT_APPS:
                continue
            for expr in self.tainted(step.data):
                out.append(f"{step.where}: {step.app}() uses ${{{expr}}} unfiltered")
        return out


def taint_violations(plan: Dialplan) -> list[str]:
    return TaintChecker(plan).violations(plan)


def _exten_steps(plan: Dialplan, context: str, exten: str) -> list[Step]:
    return [s for s in plan.steps if s.context == context and s.exten == exten]


def _route_ok_branch(step: Step) -> str | None:
    """Label a GotoIf jumps to when CC_ROUTE_OK is NOT 1, else None."""
    m = re.fullmatch(r'\$\["\$\{FILTER\(0-9,\$\{CC_ROUTE_OK\}\)\}" != "1"\]\?([^:]+)', step.data)
    return m.group(1) if step.app == "GotoIf" and m else None


def fallback_problems(plan: Dialplan, context: str = "ccengine-hotline") -> list[str]:
    """Problems with the hotline's trust-only-CC_ROUTE_OK rule and its fallback queue."""
    steps = _exten_steps(plan, context, "s")
    agi = [i for i, s in enumerate(steps) if s.app == "AGI" and "/hotline" in s.data]
    if not agi:
        return ["no AGI(.../hotline) in the hotline"]
    after = steps[agi[0] + 1:]
    checks = [i for i, s in enumerate(after) if _route_ok_branch(s)]
    routing = [i for i, s in enumerate(after)
               if s.app == "Queue" or (s.app == "Goto" and "ccengine-queue" in s.data)]
    if not checks:
        return ["no GotoIf on CC_ROUTE_OK != 1 after the hotline AGI"]
    problems = []
    if routing and routing[0] < checks[0]:
        problems.append("a queue is entered before CC_ROUTE_OK is checked")
    label = _route_ok_branch(after[checks[0]])
    at = [i for i, s in enumerate(steps) if s.label == label]
    if not at:
        return problems + [f"fallback label {label!r} does not exist"]
    tail = steps[at[0]:]
    first = next((s for s in tail if s.app in ("Queue", "AGI", "Goto", "GotoIf")), None)
    if first is None or first.app != "Queue" or first.data != "inbound":
        problems.append(f"fallback does not lead to a plain Queue(inbound): {first}")
    timeout = _exten_steps(plan, context, "T")
    if not any(s.app == "Goto" and s.data == f"s,{label}" for s in timeout):
        problems.append("the T (absolute timeout) extension does not go to the fallback")
    return problems


def agistatus_problems(plan: Dialplan) -> list[str]:
    """AGISTATUS never decides alone, and every AGI is followed by a CC_ROUTE_OK check."""
    problems = []
    for s in plan.steps:
        if s.app in ("GotoIf", "ExecIf", "GosubIf") and "AGISTATUS" in s.data \
                and "CC_ROUTE_OK" not in s.data:
            problems.append(f"{s.where}: decides on AGISTATUS alone")
    for i, s in enumerate(plan.steps):
        if s.app != "AGI":
            continue
        rest = []
        for t in plan.steps[i + 1:]:
            if (t.context, t.exten) != (s.context, s.exten) or t.app == "AGI":
                break
            rest.append(t)
        checked = any(t.app in ("GotoIf", "ExecIf") and "CC_ROUTE_OK" in t.data for t in rest)
        terminal = all(t.app in ("Set", "NoOp", "Hangup", "Return") for t in rest)
        if not (checked or terminal):
            problems.append(f"{s.where}: AGI result used without checking CC_ROUTE_OK")
    return problems


PLACEHOLDER = re.compile(r"^(|CHANGE_ME[A-Z_]*|<[^>]*>|\$\{[A-Z_]+(:-)?\})$")
SECRET_LINE = re.compile(
    r"^\s*(secret|password|passwd|md5_cred|token|api_key)\s*=>?\s*(.*?)\s*$", re.I)


def secret_problems(text: str, name: str) -> list[str]:
    problems = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith((";", "#")):
            continue
        m = SECRET_LINE.match(line.split(" ;")[0])
        if m and not PLACEHOLDER.match(m.group(2)):
            problems.append(f"{name}:{lineno}: {m.group(1)} has a real-looking value")
    return problems


def _shipped_plan() -> Dialplan:
    text = "\n".join(
        (p.read_text() if p.name != "globals_ccengine.conf" else "[globals]\n" + p.read_text())
        for p in [DIALPLANS / "globals_ccengine.conf", DIALPLANS / "extensions_ccengine.conf",
                  DEPLOY / "asterisk" / "extensions.conf"])
    return parse_dialplan(text, "shipped")


@pytest.fixture(scope="module")
def shipped() -> Dialplan:
    return _shipped_plan()


# ------------------------------------------------------------------------ shipped files --

def test_parser_reads_the_shipped_dialplan(shipped):
    """The parser finds the hotline, the hold loop and the globals, so the other checks see them."""
    contexts = {s.context for s in shipped.steps}
    assert {"ccengine-hotline", "ccengine-wait", "ccengine-agents", "ccengine-outbound"} <= contexts
    assert shipped.globals["CCENGINE_AGI"] == "127.0.0.1:4573"


def test_no_unfiltered_caller_or_engine_data_in_application_arguments(shipped):
    """No Queue/Dial/Goto/AGI/... argument carries ${EXTEN}, ${CALLERID()} or ${CC_*} unfiltered."""
    assert taint_violations(shipped) == []


def test_hotline_trusts_only_cc_route_ok_and_falls_back_to_inbound(shipped):
    """The hotline checks CC_ROUTE_OK before any queue, and its fallback is a plain Queue(inbound)."""
    assert fallback_problems(shipped) == []


def test_fallback_matches_the_captured_engine_down_path(shipped):
    """The fallback queue is the one Asterisk ran when FastAGI was down (e_baseline capture).

    Source: transcripts/e_baseline_and_agi_fallback.asterisk.log (copied to tests/fixtures/).
    """
    log = (ROOT / "tests" / "fixtures" / "e_baseline_and_agi_fallback.asterisk.log").read_text()
    failed = log.index("FastAGI failed")
    captured = re.search(r'Queue\("[^"]+", "([^"]*)"\)', log[failed:]).group(1)
    steps = _exten_steps(shipped, "ccengine-hotline", "s")
    start = next(i for i, s in enumerate(steps) if s.label == "fallback")
    queue = next(s for s in steps[start:] if s.app == "Queue")
    assert queue.data == captured == "inbound"


def test_agistatus_never_decides_alone(shipped):
    """No branch is taken on AGISTATUS alone and every AGI is followed by a CC_ROUTE_OK check."""
    assert agistatus_problems(shipped) == []


def test_hold_loop_skips_the_announcement_not_the_queue(shipped):
    """When queue-announce is not acknowledged, the next step that matters is Queue(), not AGI."""
    steps = _exten_steps(shipped, "ccengine-wait", "s")
    agi = next(i for i, s in enumerate(steps) if s.app == "AGI" and "queue-announce" in s.data)
    label = next(_route_ok_branch(s) for s in steps[agi:] if _route_ok_branch(s))
    start = next(i for i, s in enumerate(steps) if s.label == label)
    nxt = next(s for s in steps[start:] if s.app in ("Queue", "AGI", "Goto", "Hangup"))
    assert nxt.app == "Queue"
    assert ",,,${CCENGINE_SLICE}," in nxt.data  # the timeout argument that ends each slice


def test_no_real_secret_in_deploy_or_dialplans():
    """Every secret/password line in deploy/ and dialplans/ holds a placeholder, not a value."""
    files = [p for d in (DEPLOY, DIALPLANS) for p in sorted(d.rglob("*")) if p.is_file()]
    assert files
    problems = [x for p in files for x in secret_problems(p.read_text(), str(p.relative_to(ROOT)))]
    assert problems == []


def test_manager_conf_grants_no_system_or_command_class():
    """The AMI user's read/write classes are limited and never include system, command or all."""
    text = (DEPLOY / "asterisk" / "manager.conf").read_text()
    classes = dict(re.findall(r"^(read|write)\s*=\s*(\S+)", text, re.M))
    assert set(classes["read"].split(",")) == {"agent", "call", "dialplan"}
    assert set(classes["write"].split(",")) == {"agent", "call", "originate", "user"}
    assert re.search(r"^deny\s*=\s*0\.0\.0\.0/0\.0\.0\.0$", text, re.M)


def test_features_conf_sets_the_attended_transfer_code():
    """features.conf maps atxfer (empty by default in Asterisk 22, capture ami8c0) and includes
    the shipped escalate entry inside [applicationmap] (without it, transcripts3 logged
    "Unknown DYNAMIC_FEATURES item 'escalate'" on every answered queue call)."""
    text = (DEPLOY / "asterisk" / "features.conf").read_text()
    assert re.search(r"^atxfer => \*2$", text, re.M)
    section = text[text.index("[applicationmap]"):]
    assert re.search(r'^#include "ccengine/features_ccengine.conf"$', section, re.M)
    shipped = (ROOT / "dialplans" / "features_ccengine.conf").read_text()
    entries = [line for line in shipped.splitlines() if line and not line.startswith(";")]
    assert entries == ["escalate => *5,self,Gosub(ccengine-escalate,s,1),default"]


# ------------------------------------------------------------- the checker catches bugs --

BAD_SNIPPETS = {
    "raw engine queue": "exten => s,1,Queue(${CC_QUEUE})",
    "raw exten in dial": "exten => _X.,1,Dial(PJSIP/${EXTEN}@trunk)",
    "exten substring": "exten => _X.,1,Dial(PJSIP/${EXTEN:1}@trunk)",
    "caller id in dial": "exten => s,1,Dial(PJSIP/${CALLERID(num)})",
    "laundered through Set": "exten => s,1,Set(Q=${CC_QUEUE})\n same => n,Queue(${Q})",
    "laundered through inheritance": "exten => s,1,Set(__Q=${CC_QUEUE})\n same => n,Queue(${Q})",
    "laundered through ExecIf": 'exten => s,1,ExecIf($[1]?Set(Q=${CALLERID(num)}))\n same => n,Goto(x,${Q},1)',
    "raw engine value in condition": 'exten => s,1,GotoIf($["${CC_ACTION}" = "hangup"]?h)',
    "raw dtmf in AGI args": "exten => _*73X,1,AGI(agi://h/agent-pause,${EXTEN:3})",
}


@pytest.mark.parametrize("snippet", BAD_SNIPPETS.values(), ids=BAD_SNIPPETS.keys())
def test_taint_checker_rejects_unfiltered_data(snippet):
    """A snippet passing caller or engine data unfiltered to an application is reported."""
    assert taint_violations(parse_dialplan("[ctx]\n" + snippet))


def test_taint_checker_accepts_filtered_data():
    """FILTER()ed values, literal dialplan variables and literal globals are accepted."""
    text = """[globals]
TRUNK=trunk
[ctx]
exten => _X.,1,Set(N=${FILTER(0-9,${EXTEN})})
 same => n,Set(Q=inbound)
 same => n,Dial(PJSIP/${N}@${GLOBAL(TRUNK)},30)
 same => n,Queue(${Q},t,,,30)
 same => n,Goto(q,${FILTER(a-z,${CC_QUEUE})},1)
"""
    assert taint_violations(parse_dialplan(text)) == []


HOTLINE_OK = """[ccengine-hotline]
exten => s,1,Answer()
 same => n,AGI(agi://h/hotline)
 same => n,GotoIf($["${FILTER(0-9,${CC_ROUTE_OK})}" != "1"]?fallback)
 same => n,Goto(ccengine-queue,${FILTER(a-z,${CC_QUEUE})},1)
 same => n(fallback),Queue(inbound)
exten => T,1,Goto(s,fallback)
"""


def test_fallback_checker_accepts_a_correct_hotline():
    """The structural check passes on a minimal correct hotline (so its failures mean something)."""
    plan = parse_dialplan(HOTLINE_OK)
    assert fallback_problems(plan) == []
    assert agistatus_problems(plan) == []


@pytest.mark.parametrize("broken", [
    HOTLINE_OK.replace('"${FILTER(0-9,${CC_ROUTE_OK})}" != "1"', '"${AGISTATUS}" != "SUCCESS"'),
    HOTLINE_OK.replace("(fallback),Queue(inbound)", "(fallback),Queue(${FILTER(a-z,${CC_QUEUE})})"),
    HOTLINE_OK.replace("(fallback),Queue(inbound)", "(fallback),AGI(agi://h/retry)"),
    HOTLINE_OK.replace("n(fallback)", "n(other)"),
    HOTLINE_OK.replace(" same => n,GotoIf", " same => n,Queue(complaint)\n same => n,GotoIf"),
    HOTLINE_OK.replace("exten => T,1,Goto(s,fallback)", "exten => T,1,Hangup()"),
], ids=["agistatus-only", "fallback-uses-engine-queue", "fallback-needs-engine",
        "fallback-label-missing", "queue-before-check", "timeout-hangs-up"])
def test_fallback_checker_rejects_a_broken_hotline(broken):
    """Breaking the trust-only-CC_ROUTE_OK rule or the fallback path is reported."""
    assert fallback_problems(parse_dialplan(broken))


def test_agistatus_checker_rejects_agistatus_only_decisions():
    """A GotoIf on AGISTATUS alone, or an AGI whose result is used unchecked, is reported."""
    text = """[c]
exten => s,1,AGI(agi://h/hotline)
 same => n,GotoIf($["${AGISTATUS}" = "SUCCESS"]?ok)
 same => n,Queue(inbound)
"""
    assert len(agistatus_problems(parse_dialplan(text))) == 2


@pytest.mark.parametrize("line", [
    "secret = ccsecret", "password=hunter2", "secret => s3cr3t ; lab value",
])
def test_secret_checker_rejects_real_values(line):
    """A credential line with a real-looking value is reported."""
    assert secret_problems(f"[user]\n{line}\n", "x.conf")


@pytest.mark.parametrize("line", [
    "secret = CHANGE_ME_FROM_ENV", "password = <provider-password>",
    "secret=${CCENGINE_AMI_SECRET:-}", "; secret = old",
])
def test_secret_checker_accepts_placeholders(line):
    """Placeholders, environment references and comments are not reported."""
    assert secret_problems(f"[user]\n{line}\n", "x.conf") == []
