"""The database edge of the sink: its own small, untraced connection pool and the calls to the RPC functions.

The pool is the sink's alone (never the application's, which may be instrumented): one connection, a short
checkout timeout and a short libpq ``connect_timeout`` so an outage fails fast into the circuit breaker, and a
``configure`` callback that puts back psycopg's plain cursor class, because a globally enabled
``PsycopgInstrumentor`` swaps in a tracing cursor on every new connection and the sink must not trace its own
writes. (``PsycopgInstrumentor.uninstrument_connection`` is not the way: on a globally wrapped connection it
leaves ``cursor_factory = None`` and the next execute raises ``TypeError``.) Every call also runs under
``suppress_instrumentation()`` for any other instrumentation that checks it.
"""

from __future__ import annotations

import logging
import math
from enum import StrEnum
from typing import Any, Protocol

import psycopg
import psycopg_pool
from opentelemetry.instrumentation.utils import suppress_instrumentation
from psycopg.types.json import Jsonb

from pipeline.export.postgres.encode import dumps
from pipeline.export.postgres.settings import SinkSettings

log = logging.getLogger(__name__)

SIGNALS = ("points", "spans", "events")
_INSERT_SQL = {
    "points": "SELECT monitoring.insert_points(%s)",
    "spans": "SELECT monitoring.insert_spans(%s)",
    "events": "SELECT monitoring.insert_events(%s)",
}


class Failure(StrEnum):
    """How a failed write is handled."""

    TRANSIENT = "transient"  # the database or the network: retry, then spool; feeds the breaker
    REJECTED = "rejected"  # the batch itself: retrying cannot help; split it to find the bad rows


# SQLSTATE classes that blame the data: 22 data exception (our validation uses 22023), 23 integrity constraint,
# 54 program limit (an oversized batch). Anything else from the server (42 undefined function or missing
# privilege, 53 out of resources, 57 operator intervention, 08 connection) is about the database, not the rows.
_DATA_CLASSES = ("22", "23", "54")


def classify(exc: BaseException) -> Failure:
    """Pure: which kind of failure an exception from ``Store.write`` is."""
    if isinstance(exc, psycopg.Error):
        # By SQLSTATE first: psycopg files 54000 under OperationalError, though it blames the batch.
        state = exc.sqlstate or ""
        return Failure.REJECTED if state[:2] in _DATA_CLASSES else Failure.TRANSIENT
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg_pool.PoolClosed):
        return Failure.TRANSIENT
    # Not from the database at all (an encoding bug, a value json cannot dump): retrying would fail the same way.
    return Failure.REJECTED


class StoreProtocol(Protocol):
    """What the writer needs from the database (a fake in unit tests)."""

    def write(self, signal: str, rows: list[dict[str, Any]]) -> int: ...

    def maintain(self, retention_days: int, days_ahead: int) -> tuple[int, int]: ...

    def close(self, timeout_s: float) -> None: ...


def _dump_param(obj: Any) -> str:
    return dumps(obj)


class Store:
    """Writes batches through ``monitoring.insert_*``; opened without waiting so a down database never blocks."""

    def __init__(self, dsn: str, settings: SinkSettings) -> None:
        self._statement_timeout_ms = int(settings.statement_timeout_s * 1000)
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
            dsn,
            kwargs={
                "autocommit": True,  # each insert call is its own transaction: a batch commits whole or not at all
                # libpq takes whole seconds and treats anything below 2 as 2.
                "connect_timeout": max(2, math.ceil(settings.connect_timeout_s)),
                "application_name": "sieve-sink",
            },
            min_size=1,
            max_size=1,
            open=False,
            configure=self._configure,
            check=psycopg_pool.ConnectionPool.check_connection,  # a restarted server leaves dead sockets behind
            name="sieve-sink",
            timeout=settings.checkout_timeout_s,
            # Give up on background reconnection quickly: the breaker, not the pool, paces retries in an outage,
            # and a pool stuck in a long backoff would delay recovery after the database returns.
            reconnect_timeout=max(2.0, 2 * settings.connect_timeout_s),
            num_workers=1,
        )
        self._pool.open(wait=False)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.cursor_factory = psycopg.Cursor  # undo a tracing cursor factory installed by the instrumentor
        with suppress_instrumentation():
            conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")

    def write(self, signal: str, rows: list[dict[str, Any]]) -> int:
        """One round trip; returns how many rows the database inserted (the rest it already had)."""
        with suppress_instrumentation(), self._pool.connection() as conn:
            row = conn.execute(_INSERT_SQL[signal], (Jsonb(rows, dumps=_dump_param),)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def maintain(self, retention_days: int, days_ahead: int) -> tuple[int, int]:
        """Make partitions ahead and drop those past the retention; returns (created, dropped)."""
        with suppress_instrumentation(), self._pool.connection() as conn:
            row = conn.execute(
                "SELECT created, dropped FROM monitoring.maintain(%s, %s)", (retention_days, days_ahead)
            ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def close(self, timeout_s: float) -> None:
        self._pool.close(timeout=timeout_s)
