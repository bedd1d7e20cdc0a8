"""Configuration parsing: embedded defaults, merging, and every problem named with its location."""
import pytest

from ccengine.config import ConfigError, load_config, parse_config


def problems_of(data):
    with pytest.raises(ConfigError) as info:
        parse_config(data, "bad.toml")
    return info.value.problems


def test_embedded_defaults_have_the_four_queues_and_the_menu():
    """With no file, the engine runs on defaults with inbound, complaint, outbound and supervisor."""
    config = load_config(None)
    assert set(config.queues) == {"inbound", "complaint", "outbound", "supervisor"}
    assert config.ivr.options["3"].queue == "complaint"
    assert config.ivr.options["3"].category == "10"
    assert config.queues["inbound"].service_level_seconds == 15


def test_file_is_merged_over_defaults(tmp_path):
    """A file only needs what differs; other keys keep their defaults."""
    path = tmp_path / "c.toml"
    path.write_text('[company]\nname = "ACME"\n[queues.inbound]\nservice_level_seconds = 20\n')
    config = load_config(path)
    assert config.company.name == "ACME"
    assert config.queues["inbound"].service_level_seconds == 20
    assert config.queues["inbound"].short_abandon_seconds == 5
    assert config.source == str(path)


def test_every_problem_is_listed_with_its_location():
    """Wrong types, unknown keys, bad values and missing queues are all reported at once."""
    problems = problems_of({
        "queues": {"inbound": {"service_level_seconds": "fast", "colour": "red"}},
        "ivr": {"options": {"5": {"queue": "sales", "category": "55"}}},
        "company": {"timezone": "Mars/Base"},
        "http": {"port": 70000},
    })
    text = "\n".join(problems)
    assert "bad.toml: queues.inbound.service_level_seconds: expected int, got 'fast'" in text
    assert "bad.toml: queues.inbound.colour: unknown key" in text
    assert "ivr.options.5.category" in text
    assert "ivr.options.5.queue: queue 'sales' is not configured" in text
    assert "company.timezone: unknown time zone 'Mars/Base'" in text
    assert "http.port: 70000 is not a TCP port" in text
    assert len(problems) == 6


def test_unknown_top_level_section_is_an_error():
    """A misspelt section is not silently ignored."""
    assert problems_of({"queuez": {}}) == ["bad.toml: queuez: unknown key"]


def test_queue_names_must_be_dialplan_safe():
    """A queue name goes into the dialplan, so only lower-case letters, digits and _ pass."""
    problems = problems_of({"queues": {"Sales Team": {}}})
    assert any("queues.Sales Team.name" in p for p in problems)


def test_syntax_errors_and_unreadable_files_are_clear(tmp_path):
    """A TOML syntax error names the file and the position; a missing file says so."""
    path = tmp_path / "c.toml"
    path.write_text("[company\nname = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "TOML syntax error" in str(info.value) and "line 1" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml")
    assert "cannot read" in str(info.value)


def test_secret_comes_from_environment_or_file(tmp_path):
    """The AMI secret is read from the environment variable or the secret file, never the config."""
    config = load_config(None)
    assert config.ami_secret({}) is None
    assert config.ami_secret({"CCENGINE_AMI_SECRET": "s3"}) == "s3"
    secret = tmp_path / "secret"
    secret.write_text("fromfile\n")
    config = parse_config({"ami": {"secret_file": str(secret)}})
    assert config.ami_secret({"CCENGINE_AMI_SECRET": "s3"}) == "fromfile"


def test_language_queues_must_name_configured_queues_and_languages():
    """A language queue that is not configured, or a language the company does not serve,
    is named as a problem."""
    problems = problems_of({"queues": {"inbound": {"language_queues": {"en": "inbound_en",
                                                                       "fr": "inbound"}}}})
    assert "bad.toml: queues.inbound.language_queues.en: queue 'inbound_en' is not configured" in problems
    assert "bad.toml: queues.inbound.language_queues.fr: not in company.languages" in problems


def test_days_and_closed_dates_are_checked_for_queues_and_the_calling_window():
    """Queue hours and the outbound calling window share one calendar check."""
    problems = problems_of({
        "queues": {"inbound": {"days": ["mon", "funday"], "closed_dates": ["2026-02-30"]}},
        "outbound": {"days": ["sun", "someday"], "closed_dates": ["tomorrow"]},
    })
    assert sorted(problems) == sorted([
        "bad.toml: queues.inbound.days: 'funday' is not one of mon, tue, wed, thu, fri, sat, sun",
        "bad.toml: queues.inbound.closed_dates: '2026-02-30' is not a date (YYYY-MM-DD)",
        "bad.toml: outbound.days: 'someday' is not one of mon, tue, wed, thu, fri, sat, sun",
        "bad.toml: outbound.closed_dates: 'tomorrow' is not a date (YYYY-MM-DD)",
    ])


def test_menu_kind_and_category_must_agree():
    """kind = "complaint" with category "30" was validated and then routed as an inquiry; the
    configuration now refuses the pair and says which category fits (issue 18). Without a kind
    the category decides."""
    problems = problems_of({"ivr": {"options": {"5": {"kind": "complaint", "queue": "complaint",
                                                      "category": "30"}}}})
    assert problems == ["bad.toml: ivr.options.5.kind 'complaint' and category '30' disagree: "
                        "the first digit of the category is the kind (3 = inquiry); use a "
                        "category 1x for complaint"]
    for option in ({"queue": "complaint", "category": "12"},
                   {"kind": "complaint", "queue": "complaint", "category": "12"}):
        assert parse_config({"ivr": {"options": {"5": option}}}).ivr.options["5"].category == "12"


def test_fastagi_timings_are_defined_once():
    """The [fastagi] section is the server's own settings class plus the address, so the
    engine runs with exactly the configured timings (AgiSettings said max_session 900 while
    the configuration said 600)."""
    from ccengine.agi.settings import AgiSettings
    config = load_config(None)
    assert isinstance(config.fastagi, AgiSettings)
    assert config.fastagi.max_session == AgiSettings().max_session == 600.0
    assert parse_config({"fastagi": {"env_timeout": 5}}).fastagi.env_timeout == 5


def test_redis_url_with_a_bad_port_or_no_host_is_a_problem():
    """issue 19 point 9: `redis://host:notaport/0` passed check-config and crashed run."""
    import pytest as _pytest
    from ccengine.config import ConfigError, parse_config
    for url, wanted in (("redis://host:notaport/0", "url:"), ("redis://:6379/0", "no host"),
                        ("redis://h:70000/0", "url:")):
        with _pytest.raises(ConfigError) as caught:
            parse_config({"redis": {"url": url}})
        assert any(wanted in p for p in caught.value.problems), (url, caught.value.problems)
