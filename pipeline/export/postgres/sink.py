"""``PostgresSink``: the front door the composition root builds once and hands out exporters from."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.metrics import MeterProvider

from pipeline.errors import SieveError
from pipeline.export.postgres.breaker import BreakerState, CircuitBreaker
from pipeline.export.postgres.encode import event_row
from pipeline.export.postgres.exporters import PostgresMetricExporter, PostgresSpanExporter
from pipeline.export.postgres.queue import RowQueue
from pipeline.export.postgres.settings import SinkSettings
from pipeline.export.postgres.spool import Spool
from pipeline.export.postgres.store import SIGNALS, SinkDatabase, SinkDatabaseProtocol
from pipeline.export.postgres.telemetry import SinkTelemetry
from pipeline.export.postgres.writer import Writer

log = logging.getLogger(__name__)


class SinkError(SieveError):
    """The sink cannot start (its spool directory is unusable or held by another process)."""


class PostgresSink:
    """Writes metric points, kept spans and application events to the ``monitoring`` schema (sql/01xx).

    Construction opens the sink's own connection pool without waiting (a database that is down at start is an
    outage like any other) and starts one worker thread, which first replays whatever a previous process left in
    the spool. Applications and exporters only enqueue; see ``writer.py`` for what the worker does.

    ``meter_provider`` receives the sink's self-metrics (``pipeline.names.sink``); without one they are no-ops
    and only ``stats()`` has them. ``store`` replaces the database edge in unit tests.
    """

    def __init__(
        self,
        dsn: str,
        settings: SinkSettings,
        *,
        meter_provider: MeterProvider | None = None,
        store: SinkDatabaseProtocol | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._stall_s = settings.stall_flush_intervals * settings.flush_interval_s
        self._closed = False
        self._lock_fd = _lock_spool_dir(settings)
        try:
            self._telemetry = SinkTelemetry(meter_provider)
            self._breaker = CircuitBreaker(
                settings.breaker_failure_threshold,
                settings.breaker_reset_s,
                settings.breaker_reset_max_s,
                clock,
                on_transition=self._on_transition,
            )
            self._spool = Spool(
                settings.spool_dir, settings.spool_budget_bytes, settings.spool_segment_bytes, settings.spool_fsync
            )
            if not self._spool.empty():
                log.info("Postgres sink: replaying %d bytes left in %s", self._spool.size_bytes, settings.spool_dir)
            self._queue = RowQueue(settings.queue_size, settings.batch_size, SIGNALS)
            self._store = store if store is not None else SinkDatabase(dsn, settings)
            self._writer = Writer(
                self._store, self._spool, self._queue, self._breaker, self._telemetry, settings, clock=clock
            )
            self._telemetry.observe(lambda: self._breaker.state.value, lambda: self._queue.size, self._spool_bytes)
            self._writer.start()
        except BaseException:
            os.close(self._lock_fd)
            raise

    # -- exporters and the event API ---------------------------------------------------------------------------

    def metric_exporter(self, **kwargs: Any) -> PostgresMetricExporter:
        """A push exporter for ``PeriodicExportingMetricReader`` (kwargs: preferred temporality/aggregation)."""
        return PostgresMetricExporter(self, **kwargs)

    def span_exporter(self) -> PostgresSpanExporter:
        """An exporter of kept spans, to put behind the SDK's ``BatchSpanProcessor``."""
        return PostgresSpanExporter(self)

    def record_event(self, type: str, data: Mapping[str, Any]) -> bool:
        """Record an application event (the old ``insert_metric(p_type, p_data)``) through the same writer.

        Never blocks beyond a bounded enqueue and never raises: returns False when the event was dropped
        (counted under ``sieve.sink.rows.dropped``).
        """
        if not isinstance(type, str) or not type or not isinstance(data, Mapping):
            log.warning("record_event needs a non-empty type and a mapping, got %r, %r", type, data.__class__.__name__)
            self._telemetry.dropped("events", "rejected", 1)
            return False
        row = event_row(type, data, time.time_ns(), self.settings.source)
        return self.enqueue("events", [row]) == 1

    def enqueue(self, signal: str, rows: Sequence[dict[str, Any]]) -> int:
        """Hand encoded rows to the worker; returns how many fitted (the rest are counted as dropped)."""
        if self._closed:
            self._telemetry.dropped(signal, "closed", len(rows))
            return 0
        accepted = self._queue.offer(signal, rows)
        self._telemetry.enqueued(signal, accepted)
        self._telemetry.dropped(signal, "queue_full", len(rows) - accepted)
        return accepted

    def count_dropped(self, signal: str, reason: str, n: int) -> None:
        """Count rows lost before they reached the queue (an exporter that could not encode them)."""
        self._telemetry.dropped(signal, reason, n)

    # -- state -------------------------------------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write what is queued and spooled; True when everything is in the database."""
        if not self._writer.alive:
            return False
        return self._writer.flush(timeout_s)

    def health(self) -> dict[str, Any]:
        """For ``/readyz``. Not ready when the worker has stopped, when rows have waited for more than
        ``stall_flush_intervals`` flush intervals without a successful write (a hung or unreachable database:
        ``stalled``), or when the breaker is open and the spool is full. A blip shorter than that stays ready;
        ``status`` says "degraded" whenever the breaker is not closed, rows sit in the spool, or the sink stalls."""
        breaker = self._breaker.state
        running = self._writer.alive and not self._closed
        spool_bytes = self._spool_bytes()
        spool_room = spool_bytes < self.settings.spool_budget_bytes
        now = self._clock()
        waiting = self._writer.rows_waiting > 0 or spool_bytes > 0
        progress_age_s = now - self._writer.progress_at
        stalled = running and waiting and progress_age_s > self._stall_s
        if not running:
            status = "stopped"
        elif breaker is BreakerState.CLOSED and spool_bytes == 0 and not stalled:
            status = "ok"
        else:
            status = "degraded"
        last_ok = self._writer.last_success_at
        return {
            "ready": running and not stalled and (breaker is BreakerState.CLOSED or spool_room),
            "status": status,
            "stalled": stalled,
            "breaker": breaker.value,
            "queue_rows": self._queue.size,
            "queue_capacity": self.settings.queue_size,
            "spool_bytes": spool_bytes,
            "spool_budget_bytes": self.settings.spool_budget_bytes,
            "last_success_age_s": None if last_ok is None else round(now - last_ok, 3),
            "last_progress_age_s": round(progress_age_s, 3),
            "last_error": self._writer.last_error,
        }

    def stats(self) -> dict[str, Any]:
        """Row counters by signal (enqueued, written, skipped, spooled, repaired, dropped by reason, retries),
        breaker transitions and details, breaker probes started, and the queue and spool sizes."""
        out = self._telemetry.snapshot()
        out["breaker_detail"] = self._breaker.snapshot()
        out["probes"] = self._writer.probes
        out["queue_rows"] = self._queue.size
        out["spool_bytes"] = self._spool_bytes()
        out["spool_segments"] = self._spool.segments
        return out

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop accepting rows, write (or spool) everything held, stop the worker, close the pool. Idempotent.
        True if the worker finished within the timeout."""
        if self._closed:
            return True
        self._closed = True
        started = self._clock()
        finished = self._writer.stop(timeout_s)
        if not finished:
            log.warning("Postgres sink worker did not finish within %.1f s; unsent rows stay in the queue", timeout_s)
        try:
            self._store.close(max(0.5, timeout_s - (self._clock() - started)))
        finally:
            os.close(self._lock_fd)
        return finished

    def _spool_bytes(self) -> int:
        return self._spool.size_bytes

    def _on_transition(self, old: BreakerState, new: BreakerState) -> None:
        self._telemetry.transition(new.value)
        level = logging.WARNING if new is BreakerState.OPEN else logging.INFO
        log.log(level, "Postgres sink circuit breaker %s -> %s", old.value, new.value)


def _lock_spool_dir(settings: SinkSettings) -> int:
    """One process per spool directory: two replaying and deleting the same segments would lose order and rows."""
    try:
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(settings.spool_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SinkError(f"cannot use the sink spool directory {settings.spool_dir}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise SinkError(
            f"the sink spool directory {settings.spool_dir} is in use by another process; give each process its own"
        ) from exc
    return fd
