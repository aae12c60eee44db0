"""Fixtures for the Postgres sink: fast settings, and a Postgres that tests may freeze (``restartable_pg``, one
server per test that may also be stopped and started, lives in tests/conftest.py).

``freezable_pg`` is one embedded server for the session, for tests that freeze it (SIGSTOP, ``freeze.py``) but
never stop it; each such test gets a migrated database of its own (``freezable_dsn``). Sharing the server saves
an initdb and a shutdown per test. A test always thaws what it froze (``frozen()`` does so on the way out).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline.db import start_embedded, with_database
from pipeline.export.postgres import SinkSettings
from pipeline.migrate import migrate


@dataclass(frozen=True)
class FreezablePostgres:
    dsn: str
    data_dir: Path


@pytest.fixture(scope="session")
def freezable_pg() -> Iterator[FreezablePostgres]:
    # Not pytest's tmp_path: concurrent pytest runs prune each other's old tmp dirs, data directory included.
    root = Path(tempfile.mkdtemp(prefix="sieve-test-freezable-pg-"))
    db = start_embedded(root / "data")
    try:
        yield FreezablePostgres(db.dsn, Path(db._server.pgdata))
    finally:
        db.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def freezable_dsn(freezable_pg: FreezablePostgres) -> Iterator[str]:
    """A migrated database of the test's own on the freezable server, dropped afterwards."""
    name = f"f_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(freezable_pg.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(freezable_pg.dsn, name)
    try:
        migrate(dsn)
        yield dsn
    finally:
        with psycopg.connect(freezable_pg.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fast_settings(spool_dir: Path, **overrides: Any) -> SinkSettings:
    """Settings that make outages and recoveries happen within a test's patience."""
    values: dict[str, Any] = {
        "spool_dir": spool_dir,
        "batch_size": 200,
        "flush_interval_s": 0.1,
        "queue_size": 20_000,
        "max_attempts": 2,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.2,
        "breaker_failure_threshold": 2,
        "breaker_reset_s": 0.3,
        "breaker_reset_max_s": 1.0,
        "connect_timeout_s": 2.0,
        "checkout_timeout_s": 0.5,
    }
    values.update(overrides)
    return SinkSettings(**values)
