"""defaults.toml is the complete commented reference: every field of every section is in it
(as a key, or as a commented `# key = ...` line for tables that replace rather than merge),
with the value the code uses when nothing is configured. The two cannot drift."""
import dataclasses
import re
import tomllib
from importlib import resources

from ccengine.config import Config, load_config

TEXT = resources.files("ccengine.config").joinpath("defaults.toml").read_text("utf-8")
DATA = tomllib.loads(TEXT)
SKIP = {"source", "queues", "prompts"}      # queues: their own tables; prompts: overrides only


def sections():
    for f in dataclasses.fields(Config):
        if f.name not in SKIP:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            yield f.name, default


def commented(section: str, key: str) -> bool:
    body = TEXT.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
    return re.search(rf"^# {re.escape(key)} = ", body, re.M) is not None


def test_every_field_of_every_section_is_in_defaults_toml():
    missing = []
    for name, default in sections():
        assert name in DATA, f"[{name}] missing from defaults.toml"
        for f in dataclasses.fields(default):
            if f.name not in DATA[name] and not commented(name, f.name):
                missing.append(f"{name}.{f.name}")
    assert missing == []


def test_defaults_toml_values_are_the_codes_defaults():
    """What the file says is what an empty configuration gets (tuples read as lists)."""
    loaded = load_config(None)
    for name, default in sections():
        for key, value in DATA[name].items():
            if isinstance(value, dict):
                continue                  # tables (ivr.options) are checked by their tests
            code = getattr(default, key)
            assert (list(code) if isinstance(code, tuple) else code) == value, f"{name}.{key}"
            assert getattr(getattr(loaded, name), key) == code, f"{name}.{key}"


def test_commented_tables_show_the_codes_defaults():
    for section, key in (("agents", "pause_reasons"), ("complaints", "deadline_hours")):
        line = re.search(rf"^# {key} = (.*)$", TEXT, re.M).group(1)
        shown = tomllib.loads(f"x = {line}")["x"]
        assert shown == dict(getattr(getattr(Config(), section), key)), key
