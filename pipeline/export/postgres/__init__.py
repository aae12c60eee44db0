"""The Postgres metrics sink: OpenTelemetry exporters and an event API writing through ``monitoring.insert_*``.

::

    application threads / SDK reader and span-batch threads
        |  enqueue (bounded, never blocks; drops counted)
        v
    RowQueue ──> Writer thread ──> SinkDatabase (own untraced pool) ──> monitoring.insert_{points,spans,events}(jsonb)
                    |  ^   rows repaired first (any string encodes); every call under a client-side deadline;
                    |  |   retry + backoff, CircuitBreaker, half-open probes on a thread of their own
                    v  |  replay oldest first
                  Spool (JSON-lines segments on disk, bounded by a byte budget)

Pure parts: ``breaker`` (state machine, injected clock), ``backoff`` (schedule), ``encode`` and ``repair``
(rows), ``queue``. I/O shells: ``spool`` (files), ``store`` and ``deadline`` (SQL, bounded in time), ``writer``
and ``probe`` (threads), ``sink`` (the front door).
"""

from pipeline.export.postgres.breaker import BreakerState, CircuitBreaker
from pipeline.export.postgres.exporters import PostgresMetricExporter, PostgresSpanExporter
from pipeline.export.postgres.settings import SinkSettings
from pipeline.export.postgres.sink import PostgresSink, SinkError

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "PostgresMetricExporter",
    "PostgresSink",
    "PostgresSpanExporter",
    "SinkError",
    "SinkSettings",
]
