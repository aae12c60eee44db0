"""``sieve dashboards push`` against the recording fake (calls and payloads, in order) and real HTTP errors."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from grafana_client.client import GrafanaBadInputError, GrafanaClientError, GrafanaServerError

from pipeline.config import GrafanaSettings, load_settings
from pipeline.errors import ConfigError
from pipeline.grafana import cli, resources
from pipeline.grafana.datasources import DataSourceSettings, PostgresSettings
from pipeline.grafana.push import GrafanaAuthError, GrafanaRequestError, GrafanaUnreachable, Publisher
from pipeline.grafana.testing import RecordingGrafana

SETTINGS = DataSourceSettings(
    prometheus_url="http://prometheus:9090",
    postgres=PostgresSettings("postgres:5432", "sieve", "grafana", password="s3cret"),
    jaeger_url="http://jaeger:16686",
)
DATASOURCE_CALLS = ["datasource.get_datasource_by_uid", "datasource.create_datasource", "datasource.health"]


@pytest.fixture
def grafana() -> RecordingGrafana:
    return RecordingGrafana()


def test_first_push_creates_folder_then_datasources_then_dashboards(grafana, committed):
    report = Publisher(grafana, message="sieve test").push(committed, SETTINGS)

    assert grafana.methods() == [
        "folder.get_folder",
        "folder.create_folder",
        *DATASOURCE_CALLS * 3,
        *["dashboard.update_dashboard"] * len(committed),
    ]
    create_folder = grafana.calls[1]
    assert create_folder.args == (resources.FOLDER_TITLE,) and create_folder.kwargs["uid"] == resources.FOLDER_UID
    created = [c.args[0] for c in grafana.calls if c.method == "datasource.create_datasource"]
    assert [d["uid"] for d in created] == [resources.JAEGER_UID, resources.PROMETHEUS_UID, resources.POSTGRES_UID]
    assert created[2]["secureJsonData"] == {"password": "s3cret"}
    assert created[1]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == resources.JAEGER_UID

    saved = [c.args[0] for c in grafana.calls if c.method == "dashboard.update_dashboard"]
    assert sorted(p["dashboard"]["uid"] for p in saved) == sorted(resources.DASHBOARD_UIDS)
    for payload, board in zip(saved, committed, strict=True):
        assert payload["folderUid"] == resources.FOLDER_UID
        assert payload["overwrite"] is True
        assert payload["message"] == "sieve test"
        assert "id" not in payload["dashboard"]
        assert payload["dashboard"] == {k: v for k, v in board.model.items() if k != "id"}
    assert {d["folderUid"] for d in grafana.dashboards.values()} == {resources.FOLDER_UID}
    assert report.warnings == []
    assert len(report.actions) == 1 + 3 + len(committed)


def test_second_push_updates_in_place(grafana, committed):
    Publisher(grafana).push(committed, SETTINGS)
    first_calls = len(grafana.calls)
    state = (json.dumps(grafana.folders), json.dumps(grafana.datasources, sort_keys=True))
    first_models = {uid: d["model"] for uid, d in grafana.dashboards.items()}

    report = Publisher(grafana).push(committed, SETTINGS)

    second = grafana.methods()[first_calls:]
    assert second == [
        "folder.get_folder",
        *["datasource.get_datasource_by_uid", "datasource.update_datasource_by_uid", "datasource.health"] * 3,
        *["dashboard.update_dashboard"] * len(committed),
    ]
    assert (json.dumps(grafana.folders), json.dumps(grafana.datasources, sort_keys=True)) == state
    assert {uid: d["model"] for uid, d in grafana.dashboards.items()} == first_models
    assert {d["version"] for d in grafana.dashboards.values()} == {2}
    assert report.actions[0] == f"folder {resources.FOLDER_UID} present"


def test_a_renamed_folder_gets_its_title_back(grafana, committed):
    grafana.folders[resources.FOLDER_UID] = {"uid": resources.FOLDER_UID, "title": "renamed", "version": 3}
    Publisher(grafana).push(committed, None)
    update = next(c for c in grafana.calls if c.method == "folder.update_folder")
    assert update.args == (resources.FOLDER_UID,) and update.kwargs["title"] == resources.FOLDER_TITLE
    assert grafana.folders[resources.FOLDER_UID]["title"] == resources.FOLDER_TITLE


def test_skipping_datasources_pushes_folder_and_dashboards_only(grafana, committed):
    Publisher(grafana).push(committed, None)
    assert not [m for m in grafana.methods() if m.startswith("datasource.")]
    assert grafana.methods()[:2] == ["folder.get_folder", "folder.create_folder"]


def test_unhealthy_datasource_is_a_warning_not_a_failure(grafana, committed):
    grafana.health[resources.PROMETHEUS_UID] = {"status": "ERROR", "message": "connection refused"}
    grafana.fail_on["datasource.health"] = GrafanaBadInputError("Plugin health check failed")
    report = Publisher(grafana).push(committed, DataSourceSettings("http://nowhere:9090"))
    assert len(report.warnings) == 1 and "health check failed" in report.warnings[0]
    assert len(grafana.dashboards) == len(committed)


def test_health_status_error_is_reported(grafana, committed):
    grafana.health[resources.PROMETHEUS_UID] = {"status": "ERROR", "message": "connection refused"}
    report = Publisher(grafana).push(committed, DataSourceSettings("http://nowhere:9090"))
    assert report.warnings == [f"data source {resources.PROMETHEUS_UID}: health ERROR: connection refused"]


def test_errors_name_the_call_that_failed(grafana, committed):
    grafana.fail_on["dashboard.update_dashboard"] = GrafanaServerError(500, {}, "Server Error 500: boom")
    with pytest.raises(GrafanaRequestError, match="HTTP 500 while saving dashboard sieve-") as info:
        Publisher(grafana).push(committed, None)
    assert info.value.status == 500


def test_forbidden_is_an_auth_error(grafana, committed):
    grafana.fail_on["folder.create_folder"] = GrafanaClientError(403, {}, "Client Error 403: forbidden")
    with pytest.raises(GrafanaAuthError, match="403 Forbidden while creating folder sieve"):
        Publisher(grafana).push(committed, None)


def test_a_datasource_name_taken_by_another_uid_is_a_clear_conflict(grafana, committed):
    grafana.datasources["other"] = {"uid": "other", "name": "Sieve Prometheus"}
    with pytest.raises(GrafanaRequestError, match="HTTP 409 while creating data source sieve-prometheus"):
        Publisher(grafana).push(committed, DataSourceSettings("http://prometheus:9090"))


# --- the command line --------------------------------------------------------------------------------------------


def _settings(environ: dict[str, str]) -> GrafanaSettings:
    return load_settings(environ=environ).grafana


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sieve")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["dashboards", "push", *argv])


def test_cli_push_with_settings_from_flags_and_environment(grafana, capsys):
    environ = {
        "SIEVE_GRAFANA__PG_HOST": "db.internal:5432",
        "SIEVE_GRAFANA__PG_USER": "grafana_ro",
        "SIEVE_GRAFANA__PG_PASSWORD": "from-env",
        "SIEVE_GRAFANA__PROMETHEUS_URL": "http://env-prometheus:9090",
    }
    seen = {}

    def connector(settings):
        seen["url"] = settings.url
        return grafana

    args = _args("--url", "http://grafana:3000", "--prometheus-url", "http://flag-prometheus:9090")
    assert cli.run(args, _settings(environ), connector) == 0
    assert seen["url"] == "http://grafana:3000"
    payloads = {p["uid"]: p for c in grafana.calls if c.method == "datasource.create_datasource" for p in c.args}
    assert payloads[resources.PROMETHEUS_UID]["url"] == "http://flag-prometheus:9090"  # a flag beats the env
    pg = payloads[resources.POSTGRES_UID]
    assert (pg["url"], pg["user"], pg["jsonData"]["database"]) == ("db.internal:5432", "grafana_ro", "sieve")
    assert pg["secureJsonData"] == {"password": "from-env"}
    assert resources.JAEGER_UID not in payloads
    out = capsys.readouterr().out
    assert f"folder {resources.FOLDER_UID} created" in out and "dashboard sieve-overview" in out


def test_cli_has_no_password_flag():
    with pytest.raises(SystemExit):
        _args("--pg-password", "x")


def test_cli_without_postgres_host_notes_the_missing_table(grafana, capsys):
    assert cli.run(_args("--url", "http://g"), _settings({}), lambda settings: grafana) == 0
    assert "no Postgres data source pushed" in capsys.readouterr().err
    assert resources.POSTGRES_UID not in grafana.datasources


def test_cli_without_a_url_fails_clearly(capsys):
    assert cli.run(_args(), _settings({})) == 1
    assert "no Grafana URL: pass --url or set GRAFANA_URL" in capsys.readouterr().err


def test_cli_errors_name_grafana_without_its_credentials(capsys):
    url = f"http://admin:hunter2@127.0.0.1:{_closed_port()}/grafana"
    assert cli.run(_args("--url", url, "--skip-datasources"), _settings({"GRAFANA_TIMEOUT": "2"})) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sieve dashboards push to http://127.0.0.1:{url.rsplit(':', 1)[1]}: cannot reach Grafana")
    assert "hunter2" not in err


def test_a_bad_timeout_is_a_setting_error():
    with pytest.raises(
        ConfigError, match=r"grafana.timeout_s \(env SIEVE_GRAFANA__TIMEOUT_S or GRAFANA_TIMEOUT\)='soon'"
    ):
        _settings({"GRAFANA_URL": "http://g", "GRAFANA_TIMEOUT": "soon"})


def test_the_readme_push_command_starts(tmp_path, capsys):
    """The README's `SIEVE_GRAFANA__PG_PASSWORD=... sieve dashboards push` reaches Grafana, not a settings error."""
    url = f"http://127.0.0.1:{_closed_port()}"
    env = {**os.environ, "SIEVE_GRAFANA__PG_PASSWORD": "pw", "GRAFANA_URL": url, "GRAFANA_TIMEOUT": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "dashboards", "push", "--pg-host", "db:5432"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # the exit status is asserted below
    )
    assert proc.returncode == 1, proc.stderr  # Grafana is unreachable: an operation failure, not exit 2
    assert "cannot reach Grafana" in proc.stderr and "pw" not in proc.stderr


# --- real HTTP: the real client against a socket that refuses, and a server that says 401 ---------------------------


class _Unauthorized(BaseHTTPRequestHandler):
    def _reply(self) -> None:
        body = json.dumps({"message": "invalid API key"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _reply

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def unauthorized_grafana() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_401_exits_non_zero_and_says_what_to_set(unauthorized_grafana, capsys):
    environ = {"GRAFANA_URL": unauthorized_grafana, "GRAFANA_TOKEN": "wrong"}
    assert cli.run(_args("--skip-datasources"), _settings(environ)) == 1
    err = capsys.readouterr().err
    assert "401 Unauthorized while reading folder sieve" in err and "GRAFANA_TOKEN" in err


def test_401_from_the_real_client_is_an_auth_error(unauthorized_grafana, committed):
    api = cli.connect(_settings({"GRAFANA_URL": unauthorized_grafana, "GRAFANA_TOKEN": "wrong"}))
    with pytest.raises(GrafanaAuthError) as info:
        Publisher(api).push(committed, None)
    assert info.value.status == 401


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_grafana_exits_non_zero(committed, capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(GrafanaUnreachable):
        Publisher(cli.connect(_settings({"GRAFANA_URL": url, "GRAFANA_TIMEOUT": "2"}))).push(committed, None)
    assert cli.run(_args("--url", url), _settings({"GRAFANA_TIMEOUT": "2"})) == 1
    assert "while reading folder sieve" in capsys.readouterr().err
