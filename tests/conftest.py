"""Shared fixtures: one embedded Postgres for the whole session, a fresh database per test that asks for one.

``SIEVE_TEST_PG_DSN`` points the suite at an existing server instead (the fixture then creates and drops its
databases there).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
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
