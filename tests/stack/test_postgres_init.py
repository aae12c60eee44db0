"""The compose stack's Postgres init script, run against a real Postgres in the order compose runs it: the script on
an empty database first (docker-entrypoint-initdb.d), then the migrations (the demo service applies them)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from pipeline.migrate import migrate
from tests.stack.test_compose import INIT_SCRIPT

pytestmark = pytest.mark.postgres


def _run_script(dsn: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the script as the entrypoint would: psql as POSTGRES_USER on POSTGRES_DB, server from PG* variables."""
    if not shutil.which("psql"):
        pytest.skip("psql is not installed (Debian package postgresql-client)")
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(
        PGHOST=str(info.get("host") or ""),
        PGPORT=str(info.get("port") or "5432"),
        PGPASSWORD=str(info.get("password") or ""),
        POSTGRES_USER=str(info["user"]),
        POSTGRES_DB=str(info["dbname"]),
        **extra_env,
    )
    return subprocess.run(["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def grafana_role(fresh_dsn: str) -> Iterator[tuple[str, str]]:
    """A unique role name (roles are cluster-wide and the test cluster is shared) and a password; dropped after."""
    role, password = f"grafana_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    try:
        yield role, password
    finally:
        with psycopg.connect(fresh_dsn, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_grafana_login_can_read_the_monitoring_schema_and_nothing_more(
    fresh_dsn: str, grafana_role: tuple[str, str]
) -> None:
    role, password = grafana_role
    result = _run_script(fresh_dsn, {"GRAFANA_PG_USER": role, "GRAFANA_PG_PASSWORD": password})
    assert result.returncode == 0, result.stdout + result.stderr
    migrate(fresh_dsn)

    info = psycopg.conninfo.conninfo_to_dict(fresh_dsn)
    info.update(user=role, password=password)
    with psycopg.connect(**info, autocommit=True) as conn:  # type: ignore[arg-type]
        member = conn.execute("SELECT pg_has_role(current_user, 'sieve_reader', 'MEMBER')").fetchone()
        assert member == (True,)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        # What the Grafana panels do: read the tables and call the read functions.
        assert conn.execute("SELECT count(*) FROM monitoring.spans").fetchone() == (0,)
        conn.execute(
            "SELECT * FROM monitoring.get_slow_lookup_groups(now() - interval '1 hour', now(), 0.1, 10)"
        ).fetchall()
        # What it must not do: write, through the functions or otherwise.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT monitoring.insert_points('[]'::jsonb)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM sieve_schema_migrations")


def test_script_refuses_to_run_without_a_password(fresh_dsn: str, grafana_role: tuple[str, str]) -> None:
    result = _run_script(fresh_dsn, {"GRAFANA_PG_USER": grafana_role[0], "GRAFANA_PG_PASSWORD": ""})
    assert result.returncode != 0
    assert "GRAFANA_PG_PASSWORD" in result.stderr
