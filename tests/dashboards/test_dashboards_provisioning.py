"""The compose stack's provisioning files agree with the dashboards, the push payloads and the wheel."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from pipeline.grafana import datasources, resources

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "dashboards" / "provisioning"


def _datasources() -> dict[str, dict]:
    data = yaml.safe_load((PROVISIONING / "datasources" / "sieve.yaml").read_text())
    assert data["apiVersion"] == 1
    return {d["uid"]: d for d in data["datasources"]}


def test_provisioned_datasources_have_the_fixed_uids_and_types():
    provisioned = _datasources()
    assert {uid: d["type"] for uid, d in provisioned.items()} == {
        resources.PROMETHEUS_UID: resources.PROMETHEUS_TYPE,
        resources.POSTGRES_UID: resources.POSTGRES_TYPE,
        resources.JAEGER_UID: resources.JAEGER_TYPE,
    }
    assert provisioned[resources.PROMETHEUS_UID]["url"] == "http://prometheus:9090"
    assert provisioned[resources.JAEGER_UID]["url"] == "http://jaeger:16686"
    exemplars = provisioned[resources.PROMETHEUS_UID]["jsonData"]["exemplarTraceIdDestinations"]
    assert exemplars == [{"name": "trace_id", "datasourceUid": resources.JAEGER_UID}]


def _secrets(node: object, path: str = "") -> list[tuple[str, object]]:
    """(path, value) of every key that names a password or secret, at any depth."""
    found: list[tuple[str, object]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if re.search(r"password|secret|token", str(key), re.IGNORECASE) and not isinstance(value, dict):
                found.append((f"{path}.{key}", value))
            found += _secrets(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += _secrets(item, f"{path}[{i}]")
    return found


def test_postgres_password_is_interpolated_from_the_environment_never_literal():
    postgres = _datasources()[resources.POSTGRES_UID]
    assert postgres["secureJsonData"]["password"] == "${SIEVE_GRAFANA__PG_PASSWORD}"
    data = yaml.safe_load((PROVISIONING / "datasources" / "sieve.yaml").read_text())
    secrets = _secrets(data)
    assert secrets
    for path, value in secrets:
        assert re.fullmatch(r"\$\{\w+\}", str(value)), f"{path}: a literal secret in a committed file"


def test_dashboards_only_reference_provisioned_datasources(targets):
    provisioned = _datasources()
    for where, panel, _ in targets:
        ds = panel["datasource"]
        assert ds["uid"] in provisioned and provisioned[ds["uid"]]["type"] == ds["type"], where


def test_push_payloads_match_the_provisioned_datasources():
    settings = datasources.DataSourceSettings(
        prometheus_url="http://prometheus:9090",
        postgres=datasources.PostgresSettings("postgres:5432", "sieve", "grafana"),
        jaeger_url="http://jaeger:16686",
    )
    provisioned = _datasources()
    for payload in datasources.datasource_payloads(settings):
        file = provisioned[payload["uid"]]
        for key in ("name", "type", "url", "access"):
            assert payload[key] == file[key], (payload["uid"], key)
        for key, value in payload["jsonData"].items():
            if key != "timeInterval":
                assert file["jsonData"][key] == value, (payload["uid"], key)
    assert provisioned[resources.POSTGRES_UID]["user"] == "grafana"


def test_dashboard_provider_points_at_the_compose_mount_and_the_folder():
    data = yaml.safe_load((PROVISIONING / "dashboards" / "sieve.yaml").read_text())
    (provider,) = data["providers"]
    assert provider["folderUid"] == resources.FOLDER_UID and provider["folder"] == resources.FOLDER_TITLE
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/sieve"
    assert not provider["options"].get("foldersFromFilesStructure")


def test_the_wheel_carries_the_dashboards_and_provisioning():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["dashboards/grafana"] == "pipeline/grafana/_dashboards"
    assert include["dashboards/provisioning"] == "pipeline/grafana/_provisioning"


def test_dashboards_dir_falls_back_to_the_source_tree():
    assert resources.dashboards_dir() == ROOT / "dashboards" / "grafana"


def test_load_dashboards_rejects_what_is_not_a_dashboard(tmp_path):
    with pytest.raises(resources.DashboardFilesError, match=r"no \*\.json"):
        resources.load_dashboards(tmp_path)
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(resources.DashboardFilesError, match="not readable as JSON"):
        resources.load_dashboards(tmp_path)
    (tmp_path / "a.json").write_text('{"title": "no uid"}')
    with pytest.raises(resources.DashboardFilesError, match="no uid"):
        resources.load_dashboards(tmp_path)
