"""Fixtures for the Postgres sink: fast settings, and a Postgres of a test's own that it may stop and start.

The session server (``pg_server``) is never stopped; outage and crash tests start a separate embedded server and
drive it with the ``pg_ctl`` that ships inside the ``pgserver`` wheel, started exactly as pgserver starts it
(Unix socket only, same socket directory) so the DSN stays valid across restarts.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline.db import Database, start_embedded
from pipeline.export.postgres import SinkSettings


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
def restartable_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartablePostgres]:
    data_dir = Path(tmp_path_factory.mktemp("own_pg")) / "data"
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
