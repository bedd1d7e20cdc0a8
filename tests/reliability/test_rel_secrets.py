"""Issue 8, case 15: no secret is committed; the engine reads secrets from the environment or a
file path.

Scans every file git would commit (`git ls-files --cached --others --exclude-standard`, so new
files count before they are added). Credential-shaped assignments in configuration, scripts and
docs must hold a placeholder or an environment reference; key formats that are never
placeholders (AWS access keys, private key blocks, Slack/GitHub tokens) are refused anywhere.
Test code may use obviously fake lab secrets in memory; its files are checked for the key
formats only.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ccengine.config import load_config

ROOT = Path(__file__).resolve().parents[2]

ALWAYS_SECRET = {
    "aws access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY"),
    "slack token": re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    "github token": re.compile(r"\bgh[pousr]_[0-9A-Za-z]{30,}"),
    "url with password": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s:@'\"]{3,}@"),
}
ASSIGNMENT = re.compile(
    r"""(?ix)^[\s;#*>-]*["']?(?:[a-z0-9_]*?)(secret|password|passwd|api[_-]?key|token)
        ["']?\s*(?:=>|=|:)\s*(?P<value>["']?[^\s"',;]*["']?)""")
PLACEHOLDER = re.compile(
    r"""(?x)^(?:|""|''|<[^>]*>|\$\{?[A-Za-z_][A-Za-z0-9_:-]*\}?.*|CHANGE_?ME\w*|
        [A-Z][A-Z0-9_]*|\*+|x+|\.\.\.|none|null|true|false|"?\$[A-Za-z_].*)$""")
TEXT_SUFFIXES = {".conf", ".toml", ".yml", ".yaml", ".json", ".ini", ".env", ".sh", ".md",
                 ".example", ".txt", ".cfg", ""}


def committed_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def secret_findings(text: str, where: str, assignments: bool) -> list[str]:
    found = [f"{where}: {kind}" for kind, pattern in ALWAYS_SECRET.items()
             if pattern.search(text)]
    if assignments:
        for number, line in enumerate(text.split("\n"), 1):
            match = ASSIGNMENT.match(line)
            if match and not PLACEHOLDER.match(match["value"].strip("\"'")):
                found.append(f"{where}:{number}: {match[1]} = {match['value'][:4]}...")
    return found


def test_case15_no_secret_in_any_committed_file():
    """Case 15: no committed file holds a credential value or a real key format; every
    secret/password/token line in configuration, scripts and docs is a placeholder."""
    files = committed_files()
    assert any(p.name == "manager.conf" for p in files)
    problems = []
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue                                   # binary captures
        config_like = (path.suffix in TEXT_SUFFIXES and not relative.startswith("tests/")
                       or path.name in ("Dockerfile", "docker-compose.yml"))
        problems += secret_findings(text, relative, assignments=config_like)
    assert problems == []


@pytest.mark.parametrize("line", [
    "secret = ccsecret1234", 'password: "hunter2hunter2"', "api_key=abcd1234efgh",
    "CCENGINE_API_TOKEN=0123456789abcdef",
    # built from pieces so that this file does not trip its own scan
    "url = redis://default:" + "s3cr3tpass@redis.example:6379/0",
    "aws = AKIA" + "IOSFODNN7EXAMPLE", "-----BEGIN OPENSSH " + "PRIVATE KEY-----",
])
def test_case15_the_scanner_catches_real_looking_secrets(line):
    """Case 15: the scanner reports real-looking values and key formats (so a clean scan
    means something)."""
    assert secret_findings(line + "\n", "x.conf", assignments=True)


@pytest.mark.parametrize("line", [
    "secret = CHANGE_ME_FROM_ENV", "secret_env = \"CCENGINE_AMI_SECRET\"", "secret_file = \"\"",
    "token_env = \"CCENGINE_API_TOKEN\"", "CCENGINE_AMI_SECRET=", "password = <provider-password>",
    "secret=${CCENGINE_AMI_SECRET:-}", "Secret: ********",
])
def test_case15_the_scanner_accepts_placeholders(line):
    """Case 15: placeholders, empty values and environment references are not reported."""
    assert secret_findings(line + "\n", "x.conf", assignments=True) == []


def test_case15_engine_reads_secrets_from_environment_or_file(tmp_path):
    """Case 15: the AMI secret and the API token come from the environment (or a secret file),
    never from the configuration file's own values."""
    config = load_config(None)
    env = {"CCENGINE_AMI_SECRET": "from-env-1", "CCENGINE_API_TOKEN": "tok-from-env"}
    assert config.ami_secret(env) == "from-env-1"
    assert config.api_token(env) == "tok-from-env"
    assert config.ami_secret({}) is None and config.api_token({}) is None
    secret_file = tmp_path / "ami.secret"
    secret_file.write_text("from-file-1\n", encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text(f'[ami]\nsecret_file = "{secret_file}"\n', encoding="utf-8")
    assert load_config(path).ami_secret({}) == "from-file-1"
    path.write_text('[ami]\nsecret = "in-the-file"\n', encoding="utf-8")
    with pytest.raises(Exception, match="ami.secret: unknown key"):
        load_config(path)
