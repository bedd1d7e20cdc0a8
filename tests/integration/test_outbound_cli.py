"""`ccengine outbound load|list|pause|resume|stats` against a real redis-server."""
from __future__ import annotations

import argparse

import redis

from ccengine.outbound import cli
from ccengine.store import keys


def run(redis_url, *argv) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub, lambda p: p.add_argument("--config", default=None))
    args = parser.parse_args(["outbound", *argv, "--redis-url", redis_url])
    return args.func(args)


def test_load_accepts_good_rows_and_refuses_hostile_ones(redis_url, tmp_path, capsys):
    """Good rows become survey jobs; channel syntax, letters, 40 digits, premium and
    international numbers and a bad time zone are refused with their line."""
    csv_file = tmp_path / "campaign.csv"
    csv_file.write_text(
        "number,due,timezone,queue,language\n"
        "13800000001,,,,\n"
        "13800000002,2025-06-03T10:00:00+08:00,America/New_York,inbound,en\n"
        "123&PJSIP/x,,,,\n1@trunk,,,,\nabcdefg,,,,\n" + "1" * 40 + ",,,,\n"
        "9001234567,,,,\n+8613800000003,,,,\n13800000004,,Mars/Base,,\n", encoding="utf-8")
    assert run(redis_url, "load", str(csv_file), "--campaign", "june") == 1
    out, err = capsys.readouterr()
    assert "Loaded 2 survey job(s)" in out
    assert err.count("refused:") == 7 and "line 4" in err and "line 10" in err
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    ids = r.zrange(keys.outbound_due("survey"), 0, -1)
    assert len(ids) == 2
    second = next(h for h in (r.hgetall(keys.outbound_job(i)) for i in ids)
                  if h["number"] == "13800000002")
    assert (second["number"], second["tz"], second["origin"]) == (
        "13800000002", "America/New_York", "campaign:june")
    assert not any("PJSIP" in k or "trunk" in k for k in r.keys("*"))
    r.close()


def test_pause_and_resume_are_seen_by_stats(redis_url, capsys):
    """pause survey / resume survey toggle the paused set that claims honour."""
    assert run(redis_url, "pause", "survey") == 0
    run(redis_url, "stats")
    assert "paused: survey" in capsys.readouterr().out
    assert run(redis_url, "resume", "survey") == 0
    run(redis_url, "stats")
    assert "paused: none" in capsys.readouterr().out


def test_loading_the_same_file_twice_dials_nobody_twice(redis_url, tmp_path, capsys):
    """A row's job id comes from kind, campaign, number, due and queue: the second load adds
    nothing; a changed row is a new job. Blocked and do-not-call numbers are skipped, named."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.sadd("cc:blocklist", "13800000009")
    r.sadd("cc:dnc", "13800000008")
    csv_file = tmp_path / "campaign.csv"
    csv_file.write_text("number,due\n13800000001,\n13800000002,2025-06-03T10:00:00+08:00\n"
                        "13800000009,\n13800000008,\n", encoding="utf-8")
    assert run(redis_url, "load", str(csv_file), "--campaign", "june") == 0
    out, err = capsys.readouterr()
    assert "Loaded 2 survey job(s)" in out and "2 skipped" in out
    assert "line 4: 13800000009 is on the blocklist" in err and "line 5: 13800000008" in err
    assert run(redis_url, "load", str(csv_file), "--campaign", "june") == 0
    assert "Loaded 0 survey job(s)" in capsys.readouterr().out
    assert r.zcard(keys.outbound_due("survey")) == 2
    csv_file.write_text("number,due\n13800000002,2025-06-04T10:00:00+08:00\n", encoding="utf-8")
    assert run(redis_url, "load", str(csv_file), "--campaign", "june") == 0
    assert r.zcard(keys.outbound_due("survey")) == 3
    r.close()


def test_list_has_a_header_json_and_is_quiet_on_a_missing_file(redis_url, tmp_path, capsys):
    assert run(redis_url, "list") == 0
    assert capsys.readouterr().out == "due_utc\tkind\tid\tnumber\tattempts\tlast_outcome\n(none)\n"
    assert run(redis_url, "list", "--json") == 0 and capsys.readouterr().out == "[]\n"
    assert run(redis_url, "load", str(tmp_path / "missing.csv")) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "missing.csv" in err and "Errno" not in err
