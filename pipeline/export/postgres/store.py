"""The database edge of the sink: its own small, untraced connection pool and the calls to the RPC functions.

The pool is the sink's alone (never the application's, which may be instrumented): one connection, and a
``configure`` callback that puts back psycopg's plain cursor class, because a globally enabled
``PsycopgInstrumentor`` swaps in a tracing cursor on every new connection and the sink must not trace its own
writes. (``PsycopgInstrumentor.uninstrument_connection`` is not the way: on a globally wrapped connection it
leaves ``cursor_factory = None`` and the next execute raises ``TypeError``.) Every call also runs under
``suppress_instrumentation()`` for any other instrumentation that checks it.

Every wait is bounded, so a hung database fails a call instead of stalling the worker:

* connecting: libpq ``connect_timeout``; over TCP also keepalives (a dead idle connection is noticed within about
  ``keepalives_idle + keepalives_interval * keepalives_count`` seconds) and ``tcp_user_timeout`` (unacknowledged
  data fails the connection after the write deadline). libpq ignores these on Unix sockets; a value the DSN sets
  itself wins;
* waiting for the pool's connection: the pool's ``timeout`` (``checkout_timeout_s``);
* the pool's liveness check, the session set-up, each insert, probe and maintenance call: a client-side deadline
  (``deadline.Watchdog``), which works where ``statement_timeout`` cannot, against a server that never answers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, Protocol

import psycopg
import psycopg_pool
from opentelemetry.instrumentation.utils import suppress_instrumentation
from psycopg.types.json import Jsonb

from pipeline.export.postgres.deadline import DeadlineExceeded, Watchdog
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
    TIMEOUT = "timeout"  # no answer within the deadline: a hung database; opens the breaker at once, spools
    REJECTED = "rejected"  # the batch itself: retrying cannot help; split it to find the bad rows


# SQLSTATE classes that blame the data: 22 data exception (our validation uses 22023), 23 integrity constraint,
# 54 program limit (an oversized batch). Anything else from the server (42 undefined function or missing
# privilege, 53 out of resources, 57 operator intervention, 08 connection) is about the database, not the rows.
_DATA_CLASSES = ("22", "23", "54")


def classify(exc: BaseException) -> Failure:
    """Pure: which kind of failure an exception from ``SinkDatabase.write`` is."""
    if isinstance(exc, DeadlineExceeded):
        return Failure.TIMEOUT
    if isinstance(exc, psycopg.Error):
        # By SQLSTATE first: psycopg files 54000 under OperationalError, though it blames the batch.
        state = exc.sqlstate or ""
        return Failure.REJECTED if state[:2] in _DATA_CLASSES else Failure.TRANSIENT
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg_pool.PoolClosed):
        return Failure.TRANSIENT
    # Not from the database at all (an encoding bug, a value json cannot dump): retrying would fail the same way.
    return Failure.REJECTED


class SinkDatabaseProtocol(Protocol):
    """What the writer needs from the database (a fake in unit tests)."""

    def write(self, signal: str, rows: list[dict[str, Any]]) -> int: ...

    def ping(self) -> None: ...

    def maintain(self, retention_days: int, days_ahead: int) -> tuple[int, int]: ...

    def close(self, timeout_s: float) -> None: ...


def _dump_param(obj: Any) -> str:
    return dumps(obj)


def connection_kwargs(dsn: str, settings: SinkSettings) -> dict[str, Any]:
    """libpq parameters the sink adds to its DSN: timeouts and TCP liveness, unless the DSN sets them itself."""
    given = psycopg.conninfo.conninfo_to_dict(dsn) if dsn else {}
    liveness: dict[str, Any] = {
        # libpq takes whole seconds and treats anything below 2 as 2.
        "connect_timeout": max(2, math.ceil(settings.connect_timeout_s)),
        "keepalives": 1,
        "keepalives_idle": max(1, math.ceil(settings.write_timeout_s)),
        "keepalives_interval": max(1, math.ceil(settings.write_timeout_s / 3)),
        "keepalives_count": 3,
        "tcp_user_timeout": max(1, math.ceil(settings.write_timeout_s * 1000)),  # milliseconds
    }
    if psycopg.pq.version() < 120000:  # tcp_user_timeout is new in libpq 12; an older one refuses to connect
        del liveness["tcp_user_timeout"]
    kwargs: dict[str, Any] = {k: v for k, v in liveness.items() if k not in given}
    # Each insert call is its own transaction: a batch commits whole or not at all.
    kwargs["autocommit"] = True
    kwargs["application_name"] = "sieve-sink"  # tells the sink's session apart in pg_stat_activity
    return kwargs


class SinkDatabase:
    """Writes batches through ``monitoring.insert_*``; opened without waiting so a down database never blocks."""

    def __init__(self, dsn: str, settings: SinkSettings) -> None:
        self._statement_timeout_ms = int(settings.statement_timeout_s * 1000)
        self._write_timeout_s = settings.write_timeout_s
        self._probe_timeout_s = settings.probe_timeout_s
        self._checkout_timeout_s = settings.checkout_timeout_s
        self._watchdog = Watchdog()
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
            dsn,
            kwargs=connection_kwargs(dsn, settings),
            min_size=1,
            max_size=1,
            open=False,
            configure=self._configure,
            check=self._check,  # a restarted server leaves dead sockets behind
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
        with suppress_instrumentation(), self._watchdog.deadline(conn, self._write_timeout_s, "session set-up"):
            conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        with self._watchdog.deadline(conn, self._checkout_timeout_s, "connection check"):
            psycopg_pool.ConnectionPool.check_connection(conn)

    def write(self, signal: str, rows: list[dict[str, Any]]) -> int:
        """One round trip; returns how many rows the database inserted (the rest it already had)."""
        with (
            self._checkout() as conn,
            self._watchdog.deadline(conn, self._write_timeout_s, f"insert of {len(rows)} {signal}"),
        ):
            row = conn.execute(_INSERT_SQL[signal], (Jsonb(rows, dumps=_dump_param),)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def ping(self) -> None:
        """One short round trip: does the database answer at all? Raises like ``write`` when it does not."""
        with self._checkout() as conn, self._watchdog.deadline(conn, self._probe_timeout_s, "probe"):
            conn.execute("SELECT 1").fetchone()

    def maintain(self, retention_days: int, days_ahead: int) -> tuple[int, int]:
        """Make partitions ahead and drop those past the retention; returns (created, dropped)."""
        with self._checkout() as conn, self._watchdog.deadline(conn, self._write_timeout_s, "partition maintenance"):
            row = conn.execute(
                "SELECT created, dropped FROM monitoring.maintain(%s, %s)", (retention_days, days_ahead)
            ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    @contextmanager
    def _checkout(self) -> Iterator[psycopg.Connection[Any]]:
        """The pool's connection, untraced. A checkout that timed out because the pool's liveness check hung past
        its deadline is reported as ``DeadlineExceeded``: the server is hung, not merely busy or down."""
        fired = self._watchdog.fired
        try:
            with suppress_instrumentation(), self._pool.connection() as conn:
                yield conn
        except psycopg_pool.PoolTimeout as exc:
            if self._watchdog.fired > fired:
                raise DeadlineExceeded(
                    f"no live connection within {self._checkout_timeout_s:g} s: the connection check missed its"
                    " client-side deadline"
                ) from exc
            raise

    @property
    def deadlines_fired(self) -> int:
        """Calls cut short by the client-side deadline since the store opened."""
        return self._watchdog.fired

    def close(self, timeout_s: float) -> None:
        try:
            self._pool.close(timeout=timeout_s)
        finally:
            self._watchdog.close()
