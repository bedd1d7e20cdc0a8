"""The console's HTML (ccengine/console/pages.py): every outside text escaped; languages."""
from zoneinfo import ZoneInfo

from ccengine.console import pages
from ccengine.console.accounts import Account
from ccengine.console.board import AgentView, Snapshot, TicketView
from ccengine.console.window import Counts

ZONE = ZoneInfo("Asia/Shanghai")
EVIL = '<script>alert("x")</script>'


def snapshot(**kw):
    base = dict(now=1796210000.0, queues=(), agents=(), tickets=(), audit=(), ami_synced=True,
                pause_reasons={"1": "break"})
    base.update(kw)
    return Snapshot(**base)


def test_agent_names_reasons_and_audit_texts_are_escaped():
    agent = AgentView("1001", EVIL, "1001", "paused", "inbound", EVIL, 1796209000.0, 3,
                      ("inbound",), ("inbound",))
    ticket = TicketView("42", "open", "agent", EVIL, EVIL, "complaint", 1796210500.0, False, True)
    s = snapshot(agents=(agent,), tickets=(ticket,),
                 audit=({"at": 1796210000.0, "user": EVIL, "action": "pause", "target": EVIL,
                         "ok": False, "message": EVIL},))
    html = "".join(pages.fragments(s, "en", True, [{"_id": "1.2", "customer": EVIL}], ZONE).values())
    assert "<script>" not in html
    assert html.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 6


def test_read_only_pages_have_no_action_forms():
    agent = AgentView("1001", "", "1001", "idle", "", "", 1796209000.0, 0, ("inbound",))
    s = snapshot(agents=(agent,))
    assert "/console/action/" in pages.agents_panel(s, "en", True)
    assert "/console/action/" not in pages.agents_panel(s, "en", False)


def test_language_choice_and_both_languages_complete():
    assert pages.pick_language("en-GB,en;q=0.9", None) == "en"
    assert pages.pick_language("fr-FR", None) == "zh"
    assert pages.pick_language("en", "zh") == "zh"
    assert pages.pick_language(None, "<evil>") == "zh"
    assert set(pages.STRINGS["zh"]) == set(pages.STRINGS["en"])


def test_shell_puts_the_csrf_token_in_the_htmx_headers_and_escapes_the_user():
    page = pages.shell("en", "Hotline & Co", Account("bob", "operations", display=EVIL), "tok-1",
                       {}, 1796210000.0)
    assert "&lt;script&gt;" in page and EVIL not in page
    assert 'hx-headers="{&quot;X-CSRF-Token&quot;: &quot;tok-1&quot;}"' in page
    assert "Hotline &amp; Co" in page
    assert 'sse-connect="/console/events"' in page


def test_figures_show_dashes_without_data():
    assert pages.percent(None) == "–" and pages.percent(Counts().service_level) == "–"
    assert pages.duration(3725) == "1:02:05" and pages.duration(65) == "1:05"
