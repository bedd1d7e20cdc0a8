"""docker-compose.yml checked without Docker: against the Compose specification JSON schema and
against the deployment rules of issue 7 (health checks, restart policies, pinned images, named
volumes, no secret in the file).

The schema is the Compose specification's schema/compose-spec.json as vendored by the PyPI package
check-jsonschema (check_jsonschema/builtin_schemas/vendor/compose-spec.json, installed with the
test extra), the schema `docker compose config` validates with; it is not copied into this repo.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(str(resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
                  / "compose-spec.json"))
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY", re.I)
REQUIRED_VARIABLE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}$")


def volume_entries(service: dict) -> list[tuple[str | None, str]]:
    """(source, target) of each volume of a service, short or long syntax."""
    out = []
    for entry in service.get("volumes", ()):
        if isinstance(entry, dict):
            out.append((entry.get("source"), entry["target"]))
        else:
            parts = entry.split(":")
            out.append((parts[0], parts[1]) if len(parts) > 1 else (None, parts[0]))
    return out


def test_compose_file_is_valid_against_the_compose_spec_schema():
    """docker-compose.yml validates against the Compose specification schema."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema).check_schema(schema)
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(COMPOSE))
    assert errors == [], [e.message for e in errors]


def test_schema_rejects_a_broken_compose_file():
    """The schema fixture really constrains: an unknown service key is rejected."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = {"services": {"engine": {"image": "x:1", "restart_policy": "always"}}}
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


ONE_SHOT = {"prompts"}        # runs once and exits; what needs it waits for its success


def test_the_services_are_defined():
    """Asterisk, Redis, the engine, Prometheus and Grafana are all in the stack, and the
    one-shot prompt builder."""
    assert set(SERVICES) == {"asterisk", "redis", "engine", "prometheus", "grafana", "prompts"}


def test_prompts_are_built_into_the_volume_asterisk_plays_them_from():
    """The prompts service renders with the engine image into a volume; Asterisk starts after
    it succeeded, mounts it, and links <lang>/ccengine into its sounds directory, where the
    dialplan's STREAM FILE zh/ccengine/<name> looks."""
    from ccengine.config import load_config
    prompts, asterisk = SERVICES["prompts"], SERVICES["asterisk"]
    assert prompts["image"] == SERVICES["engine"]["image"] and prompts["restart"] == "no"
    assert prompts["command"][:3] == ["ccengine", "prompts", "build"]
    out_dir = prompts["command"][prompts["command"].index("--sounds-dir") + 1]
    assert ("prompts", out_dir) in volume_entries(prompts)
    assert ("prompts", out_dir) in [(s, t.removesuffix(":ro")) for s, t in volume_entries(asterisk)]
    assert asterisk["depends_on"]["prompts"]["condition"] == "service_completed_successfully"
    entrypoint = " ".join(asterisk["entrypoint"])
    languages = load_config(ROOT / "deploy" / "ccengine" / "ccengine.toml").company.languages
    assert "for lang in " + " ".join(languages) + ";" in entrypoint
    assert f"ln -sfn {out_dir}/$$lang/ccengine /var/lib/asterisk/sounds/$$lang/ccengine" in entrypoint


def test_the_engine_image_has_what_prompts_build_runs():
    """`prompts build` needs the tools its renderer calls (prompts/build.py: espeak-ng, sox and
    sox's WAV support): the Dockerfile installs them."""
    from ccengine.prompts.build import EspeakRenderer
    renderer = EspeakRenderer()
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    install = re.search(r"apt-get install[^\n]*", dockerfile).group(0)
    for tool in (renderer.espeak, renderer.sox, "libsox-fmt-base"):
        assert f" {tool}" in install, tool


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT))
def test_every_service_has_a_healthcheck_and_restart_policy(name):
    """Each service has a real health check command and restarts after a crash."""
    service = SERVICES[name]
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    assert service["restart"] in RESTART_POLICIES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned(name):
    """Every image has an explicit version tag (no :latest, no untagged image)."""
    image = SERVICES[name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"{image} has no tag"
    assert tag not in ("latest", "stable", "edge", "main", "master")
    assert re.search(r"\d", tag), f"{image}: tag without a version number"


def test_redis_keeps_an_append_only_file():
    """Redis runs with AOF on and fsync every second."""
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_volumes_are_named_or_repository_files(name):
    """A volume is a declared named volume or a bind of a path inside the repository."""
    declared = set(COMPOSE.get("volumes", {}))
    for source, target in volume_entries(SERVICES[name]):
        assert source is not None, f"{name}: anonymous volume at {target}"
        if source.startswith("./"):
            assert ".." not in Path(source).parts
        else:
            assert source in declared, f"{name}: volume {source} is not declared"
    assert declared, "no named volumes"


def test_bind_mounted_ops_files_exist():
    """The files this pack mounts (Prometheus, Grafana, engine config) exist in the repository."""
    ours = ("./deploy/prometheus", "./deploy/grafana", "./deploy/ccengine")
    sources = [s for svc in SERVICES.values() for s, _ in volume_entries(svc)
               if s and s.startswith(ours)]
    assert len(sources) >= 6
    for source in sources:
        assert (ROOT / source).exists(), source
    assert (ROOT / "Dockerfile").exists()


def test_no_secret_value_in_the_file():
    """Secret-looking variables are only `${VAR:?...}` interpolations, and .env.example lists each."""
    required = set()
    for name, service in SERVICES.items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use the mapping form"
        for key, value in environment.items():
            if SECRET_NAME.search(key):
                match = REQUIRED_VARIABLE.match(str(value))
                assert match, f"{name}.{key} must be ${{VAR:?message}}, not a literal"
                required.add(match[1])
    assert required >= {"CCENGINE_AMI_SECRET", "CCENGINE_API_TOKEN", "GRAFANA_ADMIN_PASSWORD"}
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert not re.search(r"(?i)(secret|password|token)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{12,}", text)
    example = dict(line.split("=", 1) for line in
                   (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
                   if line and not line.startswith("#"))
    assert set(example) >= required
    # empty placeholders: `${VAR:?}` refuses an empty value, so a copied example cannot run
    assert all(value == "" for value in example.values())


def test_engine_image_runs_the_mounted_config():
    """The engine is built here and started with the mounted TOML, which the config loader accepts."""
    from ccengine.config import load_config

    engine = SERVICES["engine"]
    assert engine["build"] == "."
    assert engine["command"][-2:] == ["--config", "/etc/ccengine/ccengine.toml"]
    assert ("./deploy/ccengine/ccengine.toml", "/etc/ccengine/ccengine.toml") in volume_entries(engine)
    config = load_config(ROOT / "deploy" / "ccengine" / "ccengine.toml")
    assert (config.http.bind, config.http.port) == ("0.0.0.0", 9480)
    assert config.ami.host == "asterisk" and config.redis.url.startswith("redis://redis:")
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert '"ccengine", "run", "--config", "/etc/ccengine/ccengine.toml"' in dockerfile


def test_prometheus_scrapes_the_engine_service():
    """Prometheus' scrape target is the engine service on its HTTP port (engine:9480)."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["ccengine"]["static_configs"][0]["targets"] == ["engine:9480"]


# --- the engine in its own container: AMI and FastAGI across the compose network ---------------

RENDER = ROOT / "deploy" / "asterisk" / "render-manager-conf.sh"
TEMPLATE = ROOT / "deploy" / "asterisk" / "manager.conf"
GOOD_SECRET = "lab-only-secret-0123456789"


def render(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    manager, local = tmp_path / "manager.conf", tmp_path / "ccengine_globals_local.conf"
    result = subprocess.run(["sh", str(RENDER), str(TEMPLATE), str(manager), str(local)],
                            env={"PATH": os.environ["PATH"], "CCENGINE_AMI_SECRET": GOOD_SECRET,
                                 **env},
                            capture_output=True, text=True, timeout=30)
    return result, manager, local


def conf_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith(";")]


def test_compose_wires_ami_and_agi_to_the_engine_container():
    """Asterisk's AMI binds inside its container and permits only the engine's fixed address, and
    CCENGINE_AGI names the engine's address and FastAGI port, inside the fixed compose subnet."""
    from ccengine.config import load_config

    asterisk, engine = SERVICES["asterisk"], SERVICES["engine"]
    subnet = ipaddress.ip_network(COMPOSE["networks"]["ccengine"]["ipam"]["config"][0]["subnet"])
    engine_ip = ipaddress.ip_address(engine["networks"]["ccengine"]["ipv4_address"])
    assert engine_ip in subnet
    assert ipaddress.ip_address(asterisk["networks"]["ccengine"]["ipv4_address"]) in subnet
    env = asterisk["environment"]
    assert env["CCENGINE_AMI_BINDADDR"] == "0.0.0.0"
    assert env["CCENGINE_AMI_PERMIT"] == f"{engine_ip}/255.255.255.255"
    config = load_config(ROOT / "deploy" / "ccengine" / "ccengine.toml")
    assert env["CCENGINE_AGI"] == f"{engine_ip}:{config.fastagi.port}"
    assert config.fastagi.bind == "0.0.0.0"
    # the entrypoint writes the override file that extensions.conf includes inside [globals]
    entrypoint = " ".join(asterisk["entrypoint"])
    assert "/etc/asterisk/ccengine_globals_local.conf" in entrypoint
    extensions = (ROOT / "deploy" / "asterisk" / "extensions.conf").read_text().splitlines()
    globals_at = extensions.index("[globals]")
    includes = [line for line in extensions[globals_at:] if line.startswith("#include")]
    assert includes[:2] == ['#include "ccengine/globals_ccengine.conf"',
                            '#include "ccengine_globals_local.conf"']
    assert all(not str(p).startswith("5038") for p in asterisk.get("ports", ()))


def test_render_writes_the_compose_network_settings(tmp_path):
    """With the compose environment, manager.conf binds 0.0.0.0, permits the engine alone, and the
    globals override sets CCENGINE_AGI (a later [globals] line wins: pbx_config.c sets each in order)."""
    result, manager, local = render(tmp_path, CCENGINE_AMI_BINDADDR="0.0.0.0",
                                    CCENGINE_AMI_PERMIT="172.28.0.20/255.255.255.255",
                                    CCENGINE_AGI="172.28.0.20:4573")
    assert result.returncode == 0, result.stderr
    lines = conf_lines(manager)
    assert "bindaddr = 0.0.0.0" in lines and "bindaddr = 127.0.0.1" not in lines
    assert [line for line in lines if line.startswith(("permit", "deny"))] == [
        "deny = 0.0.0.0/0.0.0.0", "permit = 172.28.0.20/255.255.255.255"]
    assert f"secret = {GOOD_SECRET}" in lines
    assert conf_lines(local) == ["CCENGINE_AGI=172.28.0.20:4573"]


def test_render_defaults_stay_on_loopback(tmp_path):
    """Without the optional variables, AMI stays on loopback and the override sets nothing."""
    result, manager, local = render(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = conf_lines(manager)
    assert "bindaddr = 127.0.0.1" in lines and "permit = 127.0.0.1/255.255.255.255" in lines
    assert conf_lines(local) == []


@pytest.mark.parametrize("env", [
    {"CCENGINE_AMI_PERMIT": "172.28.0.20"},
    {"CCENGINE_AMI_PERMIT": "172.28.0.20/255.255.255.255\npermit = 0.0.0.0/0.0.0.0"},
    {"CCENGINE_AMI_PERMIT": "172.28.0.256/255.255.255.255"},
    {"CCENGINE_AMI_BINDADDR": "0.0.0.0;x"},
    {"CCENGINE_AMI_BINDADDR": "::"},
    {"CCENGINE_AGI": "172.28.0.20"},
    {"CCENGINE_AGI": "${ENV(HOME)}:4573"},
    {"CCENGINE_AGI": "engine:4573,x"},
    {"CCENGINE_AGI": "engine:70000"},
], ids=["no-mask", "extra-line", "bad-octet", "semicolon", "ipv6", "no-port", "variable",
        "comma", "port-range"])
def test_render_refuses_malformed_network_values(tmp_path, env):
    """A value that is not exactly an IPv4 address / ADDRESS/NETMASK / host:port writes nothing."""
    result, manager, local = render(tmp_path, **env)
    assert result.returncode == 2
    assert not manager.exists() and not local.exists()


# --- the scale-out override: docker-compose.scale.yml (docs/scaling.md) ------------------------

SCALE = yaml.safe_load((ROOT / "docker-compose.scale.yml").read_text(encoding="utf-8"))


def test_scale_override_is_valid_and_wires_two_engines_sentinels_and_replicas():
    import ipaddress as _ip
    from ccengine.config import load_config
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(SCALE))
    assert errors == []
    merged = {**SERVICES, **{k: {**SERVICES.get(k, {}), **v} for k, v in SCALE["services"].items()}}
    declared = set(COMPOSE["volumes"]) | set(SCALE["volumes"])
    for name, service in SCALE["services"].items():
        for dependency in service.get("depends_on", {}):
            assert dependency in merged, (name, dependency)
        for source, _ in volume_entries(service):
            assert source.startswith("./") and (ROOT / source).exists() or source in declared
    config = load_config(ROOT / "deploy" / "ccengine" / "ccengine-scale.toml")
    assert config.ami.shared and config.redis.min_replicas_ack == 1
    assert {s.split(":")[0] for s in config.redis.sentinels} == {"sentinel1", "sentinel2",
                                                                 "sentinel3"}
    assert all(s in SCALE["services"] for s in ("sentinel1", "sentinel2", "sentinel3",
                                                "redis-replica1", "redis-replica2"))
    engine2 = SCALE["services"]["engine2"]
    address = engine2["networks"]["ccengine"]["ipv4_address"]
    asterisk_env = SCALE["services"]["asterisk"]["environment"]
    assert asterisk_env["CCENGINE_AGI_2"] == f"{address}:{config.fastagi.port}"
    permit = _ip.ip_network(asterisk_env["CCENGINE_AMI_PERMIT"].replace("/", "/"), strict=False)
    engine1 = SERVICES["engine"]["networks"]["ccengine"]["ipv4_address"]
    assert _ip.ip_address(engine1) in permit and _ip.ip_address(address) in permit
    assert _ip.ip_address(SERVICES["asterisk"]["networks"]["ccengine"]["ipv4_address"]) \
        not in permit
    assert engine2["restart"] in RESTART_POLICIES and engine2["healthcheck"]["test"][0] == "CMD"
    assert engine2["environment"]["CCENGINE_AMI_SECRET"].startswith("${CCENGINE_AMI_SECRET:?")


def test_render_writes_the_second_engine_address_and_refuses_a_bad_one(tmp_path):
    result, _, local = render(tmp_path, CCENGINE_AGI="172.28.0.20:4573",
                              CCENGINE_AGI_2="172.28.0.21:4573")
    assert result.returncode == 0, result.stderr
    assert conf_lines(local) == ["CCENGINE_AGI=172.28.0.20:4573", "CCENGINE_AGI_2=172.28.0.21:4573"]
    bad, _, _ = render(tmp_path / "b", CCENGINE_AGI_2="x;Hangup")
    assert bad.returncode == 2 and "CCENGINE_AGI_2" in bad.stderr
