"""Files in deploy/ that users copy: the site example passes check-config, the systemd unit
runs what exists."""
import configparser
from pathlib import Path

from ccengine.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_site_example_is_a_valid_configuration():
    config = load_config(ROOT / "deploy" / "ccengine" / "site-example.toml")
    assert config.queues["complaint"].record and config.redis.url


def test_systemd_unit_checks_the_configuration_then_runs_the_engine():
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(ROOT / "deploy" / "systemd" / "ccengine.service")
    service = unit["Service"]
    assert service["ExecStartPre"].endswith("ccengine check-config /etc/ccengine/ccengine.toml")
    assert service["ExecStart"].endswith("ccengine run --config /etc/ccengine/ccengine.toml")
    assert service["EnvironmentFile"] == "/etc/ccengine/secrets.env"
    assert service["Restart"] == "on-failure"
    # Longer than the engine's own bounded stop (2 x redis.timeout + 1 s, docs/operations.md).
    assert int(service["TimeoutStopSec"]) > 2 * load_config(None).redis.timeout + 1
