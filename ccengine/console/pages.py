"""The console's HTML: the login page, the page shell, and the fragments the server pushes.

Server-rendered: every panel is a fragment rendered here from a board.Snapshot and sent whole
over server-sent events (htmx's SSE extension swaps it in). Every text that is not a literal of
this file goes through `e()` (html.escape, quotes included), whatever its origin: customer
names, agent names, ticket owners, audit messages, queue names. Durations are rendered as text
and as `data-since` for console.js, which only re-counts them every second (no requests).
"""
from __future__ import annotations

import html
import json
import math
from datetime import datetime
from zoneinfo import ZoneInfo
from collections.abc import Mapping, Sequence
from typing import Any

from ccengine.console.board import AgentView, QueueView, Snapshot, TicketView

LANGUAGES = ("zh", "en")
PANELS = ("queues", "agents", "tickets", "calls", "audit")

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Supervisor console", "login": "Log in", "user": "User name",
        "password": "Password", "logout": "Log out", "login_failed":
        "Wrong user name or password, or too many attempts: try again later.",
        "queues": "Queues", "agents": "Agents", "tickets": "Complaint tickets",
        "calls": "Recent calls", "audit": "Supervisor actions",
        "waiting": "waiting", "longest": "longest wait", "callbacks": "callbacks pending",
        "sl_today": "service level today", "sl_30": "last 30 min", "asa": "avg. answer",
        "abandon": "abandoned", "staffing": "staffing", "logged_in": "logged in",
        "available": "available", "needed": "needed now (Erlang C)", "no_data": "no data yet",
        "understaffed": "below minimum staffing", "closed": "closed", "min": "minimum",
        "position": "pos.", "wait": "waited", "tier": "caller", "lang": "language",
        "category": "category", "name": "name", "agent": "agent", "phone": "phone",
        "state": "state", "since": "for", "handled": "handled today", "queue": "queue",
        "actions": "actions", "listen": "Listen", "whisper": "Whisper", "barge": "Barge",
        "pause": "Pause", "unpause": "Unpause", "logout_agent": "Log out", "override":
        "override staffing", "move": "Move", "to": "to", "assign": "Assign", "resolve":
        "Resolve", "close": "Close", "owner": "owner", "outcome": "outcome",
        "ticket": "ticket", "level": "level", "deadline": "deadline", "overdue": "overdue",
        "due_soon": "due soon", "none": "none", "last_for": "last available in",
        "when": "when", "who": "who", "what": "what", "result": "result",
        "started": "started", "outcome_call": "outcome", "recording": "recording",
        "read_only": "read-only account", "ami_off": "Not connected to Asterisk: the picture "
        "may be out of date.", "vip": "VIP", "known": "known", "new": "new",
        "idle": "available", "ringing": "ringing", "on_call": "on a call", "wrapup": "wrap-up",
        "paused": "paused", "unavailable": "unavailable", "in": "in", "of_target": "target",
        "reason": "reason",
    },
    "zh": {
        "title": "班长监控台", "login": "登录", "user": "用户名", "password": "密码",
        "logout": "退出", "login_failed": "用户名或密码错误，或尝试次数过多，请稍后再试。",
        "queues": "队列", "agents": "坐席", "tickets": "投诉工单", "calls": "最近来电",
        "audit": "班长操作记录", "waiting": "排队", "longest": "最长等待",
        "callbacks": "待回拨", "sl_today": "今日服务水平", "sl_30": "近30分钟",
        "asa": "平均应答", "abandon": "放弃率", "staffing": "在岗", "logged_in": "已登录",
        "available": "空闲", "needed": "当前所需（Erlang C）", "no_data": "暂无数据",
        "understaffed": "低于最低在岗人数", "closed": "已下班", "min": "最低",
        "position": "位置", "wait": "已等待", "tier": "来电者", "lang": "语言",
        "category": "类别", "name": "姓名", "agent": "坐席", "phone": "话机", "state": "状态",
        "since": "持续", "handled": "今日接听", "queue": "队列", "actions": "操作",
        "listen": "监听", "whisper": "耳语", "barge": "强插", "pause": "示忙",
        "unpause": "示闲", "logout_agent": "签出", "override": "忽略人数限制",
        "move": "转移", "to": "到", "assign": "指派", "resolve": "解决", "close": "关闭",
        "owner": "负责人", "outcome": "处理结果", "ticket": "工单", "level": "级别",
        "deadline": "期限", "overdue": "已超期", "due_soon": "即将到期", "none": "无",
        "last_for": "最后一名空闲坐席：", "when": "时间", "who": "操作人", "what": "操作",
        "result": "结果", "started": "开始", "outcome_call": "结果", "recording": "录音",
        "read_only": "只读账号", "ami_off": "未连接 Asterisk：画面可能不是最新。",
        "vip": "VIP", "known": "老客户", "new": "新客户", "idle": "空闲", "ringing": "振铃",
        "on_call": "通话中", "wrapup": "话后处理", "paused": "示忙",
        "unavailable": "不可用", "in": "队列", "of_target": "目标", "reason": "原因",
    },
}


def e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def pick_language(accept: str | None, chosen: str | None) -> str:
    """The cookie's choice, else the first of Accept-Language we speak, else zh."""
    if chosen in LANGUAGES:
        return chosen
    for part in (accept or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag[:2] in LANGUAGES:
            return tag[:2]
    return LANGUAGES[0]


def t(lang: str, key: str) -> str:
    return STRINGS.get(lang, STRINGS["en"]).get(key, key)


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def since(at: float, now: float) -> str:
    return f'<span class="since" data-since="{at:.3f}">{duration(now - at)}</span>'


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def seconds_text(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.0f} s"


def clock_text(at: float, zone: ZoneInfo) -> str:
    """A time of day in the centre's time zone (dates only when not today)."""
    if not at:
        return "–"
    return datetime.fromtimestamp(at, zone).strftime("%m-%d %H:%M:%S")


HEAD = ('<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="htmx-config" content="{config}">'
        '<title>{title}</title><link rel="stylesheet" href="/console/static/console.css">'
        '<script src="/console/static/htmx.min.js"></script>'
        '<script src="/console/static/htmx-ext-sse.js"></script>'
        '<script src="/console/static/console.js" defer></script></head>')
# No inline styles or eval (the page's CSP forbids them); 4xx/5xx answers are swapped too, so
# a refusal shows in the message line.
HTMX_CONFIG = json.dumps({
    "includeIndicatorStyles": False, "allowEval": False, "allowScriptTags": False,
    "responseHandling": [{"code": "204", "swap": False}, {"code": "...", "swap": True}]})


def _head(lang: str, company: str) -> str:
    return HEAD.format(lang=e(lang), config=e(HTMX_CONFIG), title=e(f"{t(lang, 'title')} · {company}"))


LANGUAGE_NAMES = {"zh": "中文", "en": "English"}


def _lang_links(lang: str) -> str:
    links = []
    for code in LANGUAGES:
        on = ' class="on"' if code == lang else ""
        links.append(f'<a href="/console?lang={code}"{on}>{LANGUAGE_NAMES[code]}</a>')
    return " ".join(links)


def login_page(lang: str, company: str, csrf: str, failed: bool = False) -> str:
    error = f'<p class="refused" role="alert">{e(t(lang, "login_failed"))}</p>' if failed else ""
    return (_head(lang, company) + '<body class="login"><main><h1>' + e(t(lang, "title")) +
            f'</h1><p class="company">{e(company)}</p>{error}'
            '<form method="post" action="/console/login">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<label>{e(t(lang, "user"))}<input name="user" autocomplete="username" required '
            'maxlength="32" autofocus></label>'
            f'<label>{e(t(lang, "password"))}<input name="password" type="password" '
            'autocomplete="current-password" required maxlength="256"></label>'
            f'<button type="submit">{e(t(lang, "login"))}</button></form>'
            f'<p class="langs">{_lang_links(lang)}</p></main></body></html>')


def shell(lang: str, company: str, account: Any, csrf: str, fragments: Mapping[str, str],
          now: float) -> str:
    role = "" if account.can_act else f' <span class="badge">{e(t(lang, "read_only"))}</span>'
    who = e(account.display or account.name)
    sections = "".join(f'<section id="{p}" sse-swap="{p}">{fragments.get(p, "")}</section>'
                       for p in PANELS)
    headers = e(json.dumps({"X-CSRF-Token": csrf}))
    return (_head(lang, company) +
            f'<body hx-ext="sse" sse-connect="/console/events" hx-headers="{headers}" '
            f'data-now="{now:.3f}">'
            f'<header><h1>{e(t(lang, "title"))}</h1><span class="company">{e(company)}</span>'
            f'<span class="who">{who}{role}</span><span class="langs">{_lang_links(lang)}</span>'
            '<form method="post" action="/console/logout" class="logout">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<button type="submit">{e(t(lang, "logout"))}</button></form></header>'
            '<p id="flash" role="status" aria-live="polite"></p>'
            f'<main>{sections}</main></body></html>')


# --- fragments -------------------------------------------------------------------------------
def _table(lang: str, title: str, css: str, columns: Sequence[str], rows: Sequence[str],
           actions: bool = False) -> str:
    """A panel: its heading, then a table of `rows` under the `columns` headings (message keys),
    or "none" when there are no rows."""
    heading = f'<h2>{e(t(lang, title))}</h2>'
    if not rows:
        return f'{heading}<p>{e(t(lang, "none"))}</p>'
    head = "".join(f"<th>{e(t(lang, c))}</th>" for c in [*columns, *(["actions"] if actions else [])])
    return (f'{heading}<table class="{css}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def fragments(snapshot: Snapshot, lang: str, can_act: bool,
              calls: Sequence[Mapping[str, str]], zone: ZoneInfo) -> dict[str, str]:
    queues = [q.name for q in snapshot.queues]
    return {
        "queues": queues_panel(snapshot, lang, can_act, queues),
        "agents": agents_panel(snapshot, lang, can_act),
        "tickets": tickets_panel(snapshot, lang, can_act, zone),
        "calls": calls_panel(calls, lang, can_act, zone),
        "audit": audit_panel(snapshot, lang, zone),
    }


def queues_panel(s: Snapshot, lang: str, can_act: bool, queues: list[str]) -> str:
    warn = "" if s.ami_synced else f'<p class="refused">{e(t(lang, "ami_off"))}</p>'
    return (f'<h2>{e(t(lang, "queues"))}</h2>{warn}<div class="queues">' +
            "".join(_queue(q, s.now, lang, can_act, queues) for q in s.queues) + "</div>")


def _queue(q: QueueView, now: float, lang: str, can_act: bool, queues: list[str]) -> str:
    def tr(key: str) -> str:
        return e(t(lang, key))
    longest = since(q.longest_since, now) if q.longest_since is not None else "–"
    if q.advice is None:
        advice = tr("no_data")
    else:
        advice = (f'<b class="needed">{q.advice.agents}</b> '
                  f'({q.advice.traffic:.1f} Erl, {percent(q.advice.service_level)})')
    flags = []
    if not q.open:
        flags.append(f'<span class="badge">{tr("closed")}</span>')
    if q.understaffed:
        flags.append(f'<span class="badge warn">{tr("understaffed")} ({tr("min")} '
                     f'{q.min_available})</span>')
    rows = "".join(_caller_row(q, c, now, lang, can_act, queues) for c in q.waiting)
    table = (f'<table class="callers"><thead><tr><th>{tr("position")}</th><th>{tr("wait")}</th>'
             f'<th>{tr("tier")}</th><th>{tr("name")}</th><th>{tr("lang")}</th>'
             f'<th>{tr("category")}</th>{"<th>" + tr("actions") + "</th>" if can_act else ""}'
             f'</tr></thead><tbody>{rows}</tbody></table>') if q.waiting else ""
    return (f'<article class="queue" id="queue-{e(q.name)}"><h3>{e(q.name)} {"".join(flags)}</h3>'
            '<dl class="figures">'
            f'<dt>{tr("waiting")}</dt><dd class="waiting-count">{len(q.waiting)}</dd>'
            f'<dt>{tr("longest")}</dt><dd>{longest}</dd>'
            f'<dt>{tr("callbacks")}</dt><dd>{q.callbacks}</dd>'
            f'<dt>{tr("sl_today")} ({q.service_level_seconds} s, {tr("of_target")} '
            f'{percent(q.sl_target)})</dt><dd>{percent(q.today.service_level)}</dd>'
            f'<dt>{tr("sl_30")}</dt><dd>{percent(q.recent.service_level)}</dd>'
            f'<dt>{tr("asa")}</dt><dd>{seconds_text(q.today.asa)}</dd>'
            f'<dt>{tr("abandon")}</dt><dd>{percent(q.today.abandon_rate)}</dd>'
            f'<dt>{tr("staffing")}</dt><dd>{q.logged_in} {tr("logged_in")} · {q.staffing} '
            f'{tr("staffing")} · {q.available} {tr("available")}</dd>'
            f'<dt>{tr("needed")}</dt><dd class="advice">{advice}</dd>'
            f'</dl>{table}</article>')


def _caller_row(q: QueueView, c: Any, now: float, lang: str, can_act: bool,
                queues: list[str]) -> str:
    tier = e(t(lang, c.tier)) if c.tier else "–"
    action = ""
    if can_act:
        options = "".join(f'<option value="{e(name)}">{e(name)}</option>'
                          for name in queues if name != q.name)
        action = (f'<td><form hx-post="/console/action/move" hx-target="#flash">'
                  f'<input type="hidden" name="caller" value="{e(c.uniqueid)}">'
                  f'{e(t(lang, "to"))} <select name="queue" id="move-{e(c.uniqueid)}" '
                  f'hx-preserve="true">{options}</select> '
                  f'<button type="submit">{e(t(lang, "move"))}</button></form></td>')
    return (f'<tr class="caller tier-{e(c.tier or "unknown")}" data-uniqueid="{e(c.uniqueid)}">'
            f'<td>{c.position}</td><td>{since(c.since, now)}</td><td>{tier}</td>'
            f'<td>{e(c.customer) or "–"}</td><td>{e(c.language) or "–"}</td>'
            f'<td>{e(c.category) or "–"}</td>{action}</tr>')


def agents_panel(s: Snapshot, lang: str, can_act: bool) -> str:
    return _table(lang, "agents", "agents",
                  ("agent", "name", "phone", "state", "since", "handled", "queue"),
                  [_agent_row(a, s, lang, can_act) for a in s.agents], can_act)


def _agent_row(a: AgentView, s: Snapshot, lang: str, can_act: bool) -> str:
    def tr(key: str) -> str:
        return e(t(lang, key))
    state = tr(a.state)
    if a.state == "on_call" and a.queue:
        state += f' ({tr("in")} {e(a.queue)})'
    if a.state == "paused" and a.reason:
        state += f' ({e(a.reason)})'
    warn = (f' <span class="badge warn">{tr("last_for")} {e(", ".join(a.last_for))}</span>'
            if a.last_for else "")
    actions = f"<td>{_agent_actions(a, s, lang)}</td>" if can_act else ""
    return (f'<tr class="agent state-{e(a.state)}" data-agent="{e(a.number)}">'
            f'<td>{e(a.number)}</td><td>{e(a.name) or "–"}</td><td>{e(a.phone)}</td>'
            f'<td class="state">{state}{warn}</td><td>{since(a.since, s.now)}</td>'
            f'<td>{a.handled}</td><td>{e(", ".join(a.queues))}</td>{actions}</tr>')


def _button(action: str, agent: str, label: str, extra: str = "") -> str:
    return (f'<form hx-post="/console/action/{action}" hx-target="#flash" class="inline">'
            f'<input type="hidden" name="agent" value="{e(agent)}">{extra}'
            f'<button type="submit" class="{action}">{e(label)}</button></form>')


def _agent_actions(a: AgentView, s: Snapshot, lang: str) -> str:
    out = []
    if a.state == "on_call":
        out += [_button(mode, a.number, t(lang, mode)) for mode in ("listen", "whisper", "barge")]
    if a.state == "paused":
        out.append(_button("unpause", a.number, t(lang, "unpause")))
    else:
        reasons = "".join(f'<option value="{e(code)}">{e(reason)}</option>'
                          for code, reason in sorted(s.pause_reasons.items()))
        extra = (f'<select name="reason" id="reason-{e(a.number)}" hx-preserve="true" '
                 f'aria-label="{e(t(lang, "reason"))}">{reasons}</select>'
                 f'<label><input type="checkbox" name="override" value="1" '
                 f'id="override-{e(a.number)}" hx-preserve="true">{e(t(lang, "override"))}</label>')
        out.append(_button("pause", a.number, t(lang, "pause"), extra))
    out.append(_button("logout", a.number, t(lang, "logout_agent")))
    return "".join(out)


def tickets_panel(s: Snapshot, lang: str, can_act: bool, zone: ZoneInfo) -> str:
    return _table(lang, "tickets", "tickets",
                  ("ticket", "deadline", "level", "owner", "name", "queue"),
                  [_ticket_row(x, lang, can_act, zone) for x in s.tickets], can_act)


def _ticket_row(x: TicketView, lang: str, can_act: bool, zone: ZoneInfo) -> str:
    def tr(key: str) -> str:
        return e(t(lang, key))
    flag = (f' <span class="badge warn">{tr("overdue")}</span>' if x.overdue else
            f' <span class="badge">{tr("due_soon")}</span>' if x.due_soon else "")
    actions = ""
    if can_act:
        def form(action: str, label: str, field_html: str = "") -> str:
            return (f'<form hx-post="/console/action/{action}" hx-target="#flash" class="inline">'
                    f'<input type="hidden" name="ticket" value="{e(x.id)}">{field_html}'
                    f'<button type="submit">{e(label)}</button></form>')
        actions = "<td>" + form("assign", t(lang, "assign"),
                                f'<input name="owner" id="owner-{e(x.id)}" hx-preserve="true" '
                                f'maxlength="40" size="8" placeholder="{tr("owner")}">')
        actions += form("resolve", t(lang, "resolve"),
                        f'<input name="outcome" id="outcome-{e(x.id)}" hx-preserve="true" '
                        f'maxlength="200" size="12" placeholder="{tr("outcome")}">')
        actions += form("close", t(lang, "close")) + "</td>"
    return (f'<tr class="ticket{" overdue" if x.overdue else ""}" data-ticket="{e(x.id)}">'
            f'<td>{e(x.id)} ({e(x.state)})</td><td>{clock_text(x.deadline, zone)}{flag}</td>'
            f'<td>{e(x.level)}</td><td>{e(x.owner) or "–"}</td><td>{e(x.customer) or "–"}</td>'
            f'<td>{e(x.queue)}</td>{actions}</tr>')


def calls_panel(calls: Sequence[Mapping[str, str]], lang: str, can_act: bool,
                zone: ZoneInfo) -> str:
    rows = []
    for call in calls:
        play = "–"
        if call.get("recording") and can_act and call.get("_has_recording"):
            play = (f'<audio controls preload="none" '
                    f'src="/console/recording/{e(call.get("_id", ""))}"></audio>')
        tier = e(t(lang, call["tier"])) if call.get("tier") else "–"
        rows.append(f'<tr class="call" data-call="{e(call.get("_id", ""))}">'
                    f'<td>{clock_text(_float(call.get("started")), zone)}</td><td>{tier}</td>'
                    f'<td>{e(call.get("customer", "")) or "–"}</td>'
                    f'<td>{e(call.get("queue", "")) or "–"}</td>'
                    f'<td>{e(call.get("outcome", "")) or "–"}</td><td>{play}</td></tr>')
    return _table(lang, "calls", "calls",
                  ("started", "tier", "name", "queue", "outcome_call", "recording"), rows)


def audit_panel(s: Snapshot, lang: str, zone: ZoneInfo) -> str:
    rows = [f'<tr class="{"ok" if entry.get("ok") else "refused"}">'
            f'<td>{clock_text(_float(entry.get("at")), zone)}</td>'
            f'<td>{e(entry.get("user", ""))}</td><td>{e(entry.get("action", ""))} '
            f'{e(entry.get("target", ""))}</td><td>{e(entry.get("message", ""))}</td></tr>'
            for entry in s.audit]
    return _table(lang, "audit", "audit", ("when", "who", "what", "result"), rows)


def message(text: str, ok: bool) -> str:
    return f'<span class="{"ok" if ok else "refused"}">{e(text)}</span>'


def _float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return 0.0
    return out if math.isfinite(out) else 0.0
