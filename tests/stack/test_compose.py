"""docker-compose.yml and its configuration files, checked without Docker: loopback-only ports, no secrets in
the file, every mounted file present, every variable documented, the demo's settings accepted by Sieve's own
settings loader, the file parsed by Compose itself (`docker-compose config`, no daemon needed), and Prometheus' and
Alertmanager's configurations accepted by their own tools."""

from __future__ import annotations

import os
import posixpath
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from pipeline.config import load_settings
from tests.alerts.tools import RULES_FILE, require_tool, run_tool
from tests.stack.compose import (
    COMPOSE_FILE,
    REPO,
    command_flag,
    compose_variables,
    container_to_host,
    env_example,
    environment,
    interpolate,
    load_compose,
    mounts,
    strings,
    variables,
)
from tests.stack.dockerfile import load_stages

COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROMETHEUS_CONFIG = REPO / "dashboards" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "dashboards" / "alertmanager" / "alertmanager.yml"
INIT_SCRIPT = REPO / "dashboards" / "compose" / "postgres-init" / "10-grafana-reader.sh"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)|CREDENTIAL", re.IGNORECASE)
# Values for the required variables (the others take their defaults), as a filled-in .env would give them.
PLACEHOLDERS = {name: f"placeholder-{name.lower()}" for name, op in compose_variables().items() if op in ("?", ":?")}
# Compose's own settings, read from .env by Compose itself (v1 and v2) rather than interpolated into the file.
COMPOSE_SETTINGS = {"COMPOSE_PROJECT_NAME"}


def _interpolated(value: str) -> str:
    return interpolate(value, PLACEHOLDERS)


def test_the_stack_has_every_service() -> None:
    assert set(SERVICES) == {"postgres", "demo", "otel-collector", "jaeger", "prometheus", "alertmanager", "grafana"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned(name: str) -> None:
    service = SERVICES[name]
    image = service.get("image", "")
    assert image, f"{name}: no image"
    repository, _, tag = image.rpartition(":")
    assert repository and tag and tag != "latest", f"{name}: pin a version, not {image!r}"
    if "build" in service:
        # Built here from the top-level Dockerfile (its base image is pinned: tests/stack/test_dockerfile.py).
        assert service["build"] == "." and (REPO / "Dockerfile").is_file(), f"{name}: build: {service['build']!r}"


def test_only_the_demo_is_built_and_nothing_installs_at_start() -> None:
    assert [name for name, service in SERVICES.items() if "build" in service] == ["demo"]
    for name, service in SERVICES.items():
        command = " ".join(strings([service.get("entrypoint"), service.get("command")]))
        assert not re.search(r"\bpip\b|\bapt(-get)?\b", command), f"{name} installs at start: {command!r}"
    # The demo runs the image's own package: no source tree mounted into it.
    assert not any(m.is_bind for m in mounts(SERVICES["demo"]))


def test_the_file_parses_for_compose_v1_and_v2() -> None:
    # v1 (docker-compose 1.x) rejects a top-level `name`; v2 warns that `version` is obsolete.
    assert set(COMPOSE) <= {"services", "volumes", "networks", "configs", "secrets"}, sorted(COMPOSE)
    # The project name `name: sieve` used to give, through the setting both versions read from .env.
    assert env_example()["COMPOSE_PROJECT_NAME"] == "sieve"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_published_ports_bind_to_loopback_only(name: str) -> None:
    for port in SERVICES[name].get("ports") or []:
        if isinstance(port, dict):
            assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            continue
        parts = _interpolated(str(port)).split(":")
        assert len(parts) == 3 and parts[0] == "127.0.0.1", f"{name}: {port!r} is not bound to 127.0.0.1"
        assert parts[1].isdigit() and parts[2].split("/")[0].isdigit(), f"{name}: {port!r}"


def test_no_literal_secrets() -> None:
    for name, service in SERVICES.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                found = variables(value)
                assert found and re.fullmatch(r"\$\{[^}]+\}", value), f"{name}.{key}: a literal value"
                # A default would be a secret written in the file.
                assert all(op in (None, "?", ":?") for op in found.values()), f"{name}.{key} has a default"
    # Credentials inside URLs (user:password@host) must be variables too.
    for match in re.finditer(r"://[^/\s:@]+:([^@\s]+)@", "\n".join(strings(COMPOSE))):
        assert re.fullmatch(r"\$\{[^}]+\}", match.group(1)), f"literal password in {match.group(0)!r}"


def test_every_variable_is_documented_in_env_example_and_required_ones_are_empty() -> None:
    used = compose_variables()
    documented = env_example()
    assert set(used) - set(documented) == set(), "variables used in docker-compose.yml but not in .env.example"
    assert set(documented) - set(used) - COMPOSE_SETTINGS == set(), ".env.example documents variables nothing uses"
    for name, op in used.items():
        if op in ("?", ":?") or SECRET_NAME.search(name):
            assert documented[name] == "", f".env.example must not ship a value for {name}"
    # Every variable sits in a paragraph that has a comment explaining it.
    for paragraph in (REPO / ".env.example").read_text(encoding="utf-8").split("\n\n"):
        lines = [line for line in paragraph.splitlines() if line.strip()]
        if any(not line.startswith("#") for line in lines):
            assert any(line.startswith("# ") for line in lines), f"undocumented: {paragraph!r}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_mounted_file_exists(name: str) -> None:
    for mount in mounts(SERVICES[name]):
        if mount.is_bind:
            assert mount.host_path().exists(), f"{name}: {mount.source} does not exist"
            assert mount.read_only, f"{name}: mount {mount.source} read-only"


def test_demo_settings_are_ones_sieve_accepts() -> None:
    demo = SERVICES["demo"]
    env = {k: _interpolated(v) for k, v in environment(demo).items()}
    settings = load_settings(environ=env)  # raises ConfigError naming any unknown or invalid setting
    assert settings.database.dsn and "@postgres:5432/" in settings.database.dsn
    assert settings.prometheus.host == "0.0.0.0" and settings.prometheus.allow_remote
    assert settings.service.host == "0.0.0.0"
    assert settings.service.token == PLACEHOLDERS["SIEVE_DEMO_TOKEN"]
    # OTLP/HTTP to the collector service's HTTP receiver.
    assert settings.otlp.endpoint == "http://otel-collector:4318"
    collector = yaml.safe_load((REPO / "otel-config.yaml").read_text())
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    # The published ports are the ones the service listens on.
    published = {p.split(":")[-1] for p in demo["ports"]}
    assert published == {str(settings.service.port), str(settings.prometheus.port)}
    # The image's entrypoint is `sieve`; compose gives its arguments.
    entrypoint = load_stages()[-1].last("ENTRYPOINT")
    assert entrypoint and [*(entrypoint.exec_form() or []), *demo["command"]] == ["sieve", "demo", "--serve"]


def test_grafana_mounts_the_provisioning_and_the_dashboards() -> None:
    targets = {m.target: m.source for m in mounts(SERVICES["grafana"])}
    assert targets["/etc/grafana/provisioning"] == "./dashboards/provisioning"
    assert targets["/var/lib/grafana/dashboards/sieve"] == "./dashboards/grafana"


def test_collector_runs_the_repository_config() -> None:
    collector = SERVICES["otel-collector"]
    assert collector["image"].startswith("otel/opentelemetry-collector-contrib:")
    config = collector["command"][0].removeprefix("--config=")
    assert container_to_host(collector, config) == (REPO / "otel-config.yaml").resolve()
    # No published ports: replicas (--scale) would collide on them.
    assert not collector.get("ports")


def test_postgres_init_script_creates_the_login_grafana_uses() -> None:
    postgres, grafana = SERVICES["postgres"], SERVICES["grafana"]
    init = container_to_host(postgres, "/docker-entrypoint-initdb.d")
    assert init is not None
    assert sorted(p.name for p in init.iterdir()) == [INIT_SCRIPT.name]
    role = re.search(r"GRAFANA_PG_USER:=(\w+)", INIT_SCRIPT.read_text()).group(1)  # type: ignore[union-attr]
    sources = [
        source
        for path in sorted((REPO / "dashboards" / "provisioning" / "datasources").glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
        if "postgres" in source["type"]
    ]
    assert sources, "no Postgres data source provisioned"
    grafana_env = environment(grafana)
    for source in sources:
        assert source["user"] == role
        assert (
            source["url"] == "postgres:5432" and source["jsonData"]["database"] == environment(postgres)["POSTGRES_DB"]
        )
        # Each ${VAR} of the provisioning file is in Grafana's environment, fed by the same .env variable as the
        # role's password in the postgres service.
        for name in variables(yaml.safe_dump(source)):
            assert name in grafana_env, f"Grafana's environment lacks {name}"
            assert grafana_env[name] == environment(postgres)["GRAFANA_PG_PASSWORD"]


# -- Prometheus and Alertmanager ---------------------------------------------------------------------------------


def test_prometheus_config_paths_resolve_the_same_in_the_container_and_here() -> None:
    prometheus = SERVICES["prometheus"]
    assert command_flag(prometheus, "--enable-feature") == "exemplar-storage"
    config_in_container = command_flag(prometheus, "--config.file")
    assert config_in_container is not None
    assert container_to_host(prometheus, config_in_container) == PROMETHEUS_CONFIG.resolve()
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert config["rule_files"], "no rule files"
    for rule_file in config["rule_files"]:
        assert not PurePosixPath(rule_file).is_absolute(), "relative, so it resolves in both places"
        here = (PROMETHEUS_CONFIG.parent / rule_file).resolve()
        there = posixpath.normpath(posixpath.join(posixpath.dirname(config_in_container), rule_file))
        assert here == RULES_FILE.resolve()
        assert container_to_host(prometheus, there) == here


def test_prometheus_scrapes_the_demo_as_job_sieve_every_5s_and_alerts_to_alertmanager() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    sieve = jobs["sieve"]
    assert sieve["scrape_interval"] == "5s"
    assert [t for c in sieve["static_configs"] for t in c["targets"]] == ["demo:9464"]
    targets = [t for a in config["alerting"]["alertmanagers"] for c in a["static_configs"] for t in c["targets"]]
    assert targets == ["alertmanager:9093"]
    for target in ("demo", "alertmanager"):
        assert target in SERVICES
    # The alert rules name the job: renaming it here would silence SieveTargetDown and every ratio.
    assert 'job="sieve"' in RULES_FILE.read_text()


def test_promtool_check_config() -> None:
    promtool = require_tool("promtool")
    result = run_tool([promtool, "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def test_alertmanager_routes_every_severity_the_rules_use() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    receivers = {r["name"] for r in config["receivers"]}
    routed: dict[str, str] = {}
    for route in config["route"]["routes"]:
        for matcher in route["matchers"]:
            match = re.fullmatch(r'severity="(\w+)"', matcher)
            if match:
                routed[match.group(1)] = route["receiver"]
    rules = yaml.safe_load(RULES_FILE.read_text())
    severities = {r["labels"]["severity"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert severities <= set(routed)
    assert set(routed.values()) | {config["route"]["receiver"]} <= receivers
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    for inhibit in config.get("inhibit_rules", []):
        for matcher in inhibit["source_matchers"]:
            name = re.fullmatch(r'alertname="(\w+)"', matcher)
            assert name and name.group(1) in alerts, f"inhibition by an unknown alert: {matcher}"
    alertmanager = SERVICES["alertmanager"]
    config_file = command_flag(alertmanager, "--config.file")
    assert config_file and container_to_host(alertmanager, config_file) == ALERTMANAGER_CONFIG.resolve()


def test_amtool_check_config_and_routing() -> None:
    amtool = require_tool("amtool")  # .ci/run installs prometheus-alertmanager: in CI this runs, never skips
    result = run_tool([amtool, "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    for severity in ("page", "ticket"):
        routed = run_tool(
            [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", f"severity={severity}"]
        )
        assert routed.returncode == 0, routed.stdout + routed.stderr
        assert routed.stdout.strip() == severity


# -- Compose itself -----------------------------------------------------------------------------------------------


def _docker_compose(args: list[str], values: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f docker-compose.yml --env-file <values> args``: a developer's .env and shell variables
    play no part (the env file replaces .env; the variables the file uses are removed from the environment)."""
    docker_compose = require_tool("docker-compose")
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if k not in compose_variables() and not k.startswith("COMPOSE_")}
    command = [docker_compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args]
    return subprocess.run(command, cwd=REPO, env=environ, capture_output=True, text=True, timeout=60, check=False)


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    values = {**env_example(), **PLACEHOLDERS}
    result = _docker_compose(["config", "-q"], values, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    resolved = yaml.safe_load(_docker_compose(["config"], values, tmp_path).stdout)
    demo = resolved["services"]["demo"]
    assert Path(demo["build"]["context"]).resolve() == REPO and demo["image"] == SERVICES["demo"]["image"]
    assert demo["environment"]["SIEVE_SERVICE__TOKEN"] == PLACEHOLDERS["SIEVE_DEMO_TOKEN"]


def test_docker_compose_stops_on_an_unset_required_variable(tmp_path: Path) -> None:
    result = _docker_compose(["config", "-q"], env_example(), tmp_path)  # the passwords as shipped: empty
    assert result.returncode != 0
    assert "set it in .env (see .env.example)" in result.stderr
