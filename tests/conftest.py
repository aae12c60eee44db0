"""Shared fixtures: one embedded Postgres for the whole session, a fresh database per test that asks for one,
and a Postgres of a test's own that it may stop and start (``restartable_pg``: outage and crash tests drive it
with the ``pg_ctl`` inside the ``pgserver`` wheel, started as pgserver starts it, so the DSN survives restarts).

``SIEVE_TEST_PG_DSN`` points the suite at an existing server instead (the fixture then creates and drops its
databases there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pipeline.db import Database, start_embedded, with_database


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Database]:
    dsn = os.environ.get("SIEVE_TEST_PG_DSN")
    if dsn:
        yield Database(dsn=dsn, embedded=False)
        return
    # Not pytest's tmp_path: concurrent pytest runs prune each other's old tmp dirs, data directory included.
    root = Path(tempfile.mkdtemp(prefix="sieve-test-pg-"))
    db = start_embedded(root / "data")
    try:
        yield db
    finally:
        db.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh_dsn(pg_server: Database) -> Iterator[str]:
    """A DSN to an empty database of its own, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(pg_server.dsn, name)
    finally:
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_dsn(fresh_dsn: str) -> str:
    from pipeline.migrate import migrate

    migrate(fresh_dsn)
    return fresh_dsn


@dataclass
class RestartablePostgres:
    """An embedded server owned by one test."""

    db: Database
    data_dir: Path
    socket_dir: str
    system_user: str | None

    @property
    def dsn(self) -> str:
        return self.db.dsn

    def _pg_ctl(self, args: list[str]) -> None:
        import pgserver

        pgserver.pg_ctl(args, pgdata=self.data_dir, user=self.system_user, timeout=20)

    def stop(self) -> None:
        # -m fast: disconnect clients and stop at once, like a crash of the network path from the sink's side.
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.data_dir / "log"), "start"])

    def running(self) -> bool:
        try:
            self._pg_ctl(["status"])
        except subprocess.CalledProcessError:
            return False
        return True


@pytest.fixture
def restartable_pg() -> Iterator[RestartablePostgres]:
    root = Path(tempfile.mkdtemp(prefix="sieve-test-own-pg-"))
    data_dir = root / "data"
    db = start_embedded(data_dir)
    server = db._server
    socket_dir = psycopg.conninfo.conninfo_to_dict(db.dsn)["host"]
    pg = RestartablePostgres(db, Path(server.pgdata), str(socket_dir), server.system_user)
    try:
        yield pg
    finally:
        # After a restart pgserver's own handle points at the old postmaster, so stop the server here.
        if pg.running():
            pg.stop()
        db.close()
        shutil.rmtree(root, ignore_errors=True)
