"""The ``sieve`` command as a new user meets it: from a plain directory, in a process of its own.

Every failure a user can cause (a taken port, an unreachable database, a directory it may not create) is one line
on stderr naming the cause and the setting, exit status 2, and no traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipeline.config import Settings, load_settings
from pipeline.config.show import SECRETS, effective

SECRET_ENV = {
    "SIEVE_PG_DSN": "postgresql://app:hunter2@db.internal:5432/app?sslmode=require",
    "SIEVE_SINK__DSN": "host=metrics.internal user=sieve password='s3 cret' dbname=m",
    "SIEVE_SERVICE__TOKEN": "tok-42",
    "SIEVE_GRAFANA__PG_PASSWORD": "pg-pw",
    "GRAFANA_TOKEN": "glsa_abc",
    "GRAFANA_URL": "https://admin:adminpw@grafana.internal",
    # Named by the project's own README and compose file: never settings, never a refused start.
    "SIEVE_TEST_PG_DSN": "postgresql://x/y",
    "SIEVE_DEMO_TOKEN": "compose-token",
}


def sieve(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIEVE_", "OTEL_", "GRAFANA_"))}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the tests assert on the exit status
    )


def assert_one_line_failure(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sieve: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_version(tmp_path: Path) -> None:
    proc = sieve("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("sieve ")


@pytest.mark.parametrize("as_json", [False, True])
def test_config_prints_the_effective_settings_with_secrets_masked(tmp_path: Path, as_json: bool) -> None:
    proc = sieve("config", *(["--json"] if as_json else []), env=SECRET_ENV, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout) if as_json else yaml.safe_load(proc.stdout)
    for secret in ("hunter2", "s3 cret", "tok-42", "pg-pw", "glsa_abc", "adminpw"):
        assert secret not in proc.stdout
    assert data["database"]["dsn"] == "postgresql://app:****@db.internal:5432/app?sslmode=require"
    assert data["sink"]["dsn"] == "host=metrics.internal user=sieve password=**** dbname=m"
    assert data["service"]["token"] == data["grafana"]["token"] == data["grafana"]["pg_password"] == "****"
    assert data["grafana"]["url"] == "https://admin:****@grafana.internal"
    assert data["sink"]["batch_size"] == 1000  # the sink's options shown flat, as they are written
    # What it prints is a config file Sieve reads back (secrets aside).
    if not as_json:
        path = tmp_path / "printed.yaml"
        path.write_text(proc.stdout)
        assert load_settings(path, environ={}).sink.options.batch_size == 1000


def test_every_field_that_holds_a_secret_is_masked() -> None:
    def walk(model: type, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for name, field in getattr(model, "model_fields", {}).items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                yield from walk(annotation, (*path, name))
            else:
                yield (*path, name)

    secretive = [p for p in walk(Settings, ()) if any(w in p[-1] for w in ("dsn", "token", "password", "secret"))]
    assert secretive and all(p in SECRETS for p in secretive), set(secretive) - set(SECRETS)
    sink_fields = [f.name for f in dataclasses.fields(type(load_settings(environ={}).sink.options))]
    assert not [f for f in sink_fields if any(w in f for w in ("dsn", "token", "password"))]
    shown = json.dumps(effective(load_settings(environ=SECRET_ENV)))
    assert "hunter2" not in shown and "tok-42" not in shown


def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    proc = sieve("config", env={"SIEVE_DEMO__CLIENTZ": "3"}, cwd=tmp_path)
    assert_one_line_failure(proc, "demo.clientz", "a known setting")


def test_a_taken_port_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = sieve("demo", "--duration", "1", "--metrics-port", port, cwd=tmp_path)
        assert_one_line_failure(proc, f"127.0.0.1:{port}", "prometheus.port", "address already in use")
        proc = sieve("demo", "--duration", "1", "--port", port, "--metrics-port", "0", cwd=tmp_path)
        assert_one_line_failure(proc, "service.port")
    assert not (tmp_path / ".sieve").exists()  # nothing was started before the check


def test_an_unreachable_database_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    proc = sieve("--dsn", f"postgresql://app:pw@127.0.0.1:{port}/app", "migrate", cwd=tmp_path)
    assert_one_line_failure(proc, "database.dsn", "Connection refused")
    assert "pw@" not in proc.stderr


def test_a_directory_it_cannot_create_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    proc = sieve("migrate", env={"SIEVE_DATABASE__DATA_DIR": "/proc/sieve-cannot/pgdata"}, cwd=tmp_path)
    assert_one_line_failure(proc, "database.data_dir", "/proc/sieve-cannot")
