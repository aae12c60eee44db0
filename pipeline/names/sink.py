"""Metric names and attribute keys of the Postgres sink (``pipeline/export/postgres``).

Every row the sink is handed ends in exactly one of: written (the database inserted it), skipped (the database
already had it, or it was older than the retention), spooled and later written, or dropped with a reason.
Nothing is discarded without one of these counters moving.
"""

from __future__ import annotations

from pipeline.names.spec import Kind, MetricSpec

# A batched insert takes from a millisecond to the write deadline's seconds.
BATCH_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

# Attribute keys.
SIGNAL = "sieve.sink.signal"  # "points" | "spans" | "events"
# queue_full | spool_full | spool_error | spool_corrupt | rejected | closed | unencodable | internal_error
DROP_REASON = "sieve.sink.reason"
OUTCOME = "sieve.sink.outcome"  # "ok" | "transient" | "timeout" (past the client-side deadline) | "rejected"
BREAKER_STATE_LABEL = "sieve.sink.breaker.state"  # "closed" | "open" | "half_open"

# Values of sieve.sink.breaker.state (the gauge); ordered by how bad they are.
BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}

ROWS_ENQUEUED = MetricSpec(
    "sieve.sink.rows.enqueued", Kind.COUNTER, "{row}", "Rows accepted into the sink's queue", (SIGNAL,)
)
ROWS_WRITTEN = MetricSpec("sieve.sink.rows.written", Kind.COUNTER, "{row}", "Rows the database inserted", (SIGNAL,))
ROWS_SKIPPED = MetricSpec(
    "sieve.sink.rows.skipped",
    Kind.COUNTER,
    "{row}",
    "Rows sent that the database did not insert: already present (a retried or replayed batch) or older than "
    "the retention",
    (SIGNAL,),
)
ROWS_SPOOLED = MetricSpec(
    "sieve.sink.rows.spooled",
    Kind.COUNTER,
    "{row}",
    "Rows written to the local spool while Postgres was unreachable",
    (SIGNAL,),
)
ROWS_DROPPED = MetricSpec(
    "sieve.sink.rows.dropped", Kind.COUNTER, "{row}", "Rows lost, by reason", (SIGNAL, DROP_REASON)
)
BATCH_DURATION = MetricSpec(
    "sieve.sink.batch.duration",
    Kind.HISTOGRAM,
    "s",
    "Time of one batched insert call, including the connection checkout",
    (SIGNAL, OUTCOME),
    buckets=BATCH_BUCKETS_S,
)
RETRIES = MetricSpec(
    "sieve.sink.retries",
    Kind.COUNTER,
    "{attempt}",
    "Insert attempts that failed and were retried or spooled",
    (SIGNAL,),
)
BREAKER_STATE = MetricSpec(
    "sieve.sink.breaker.state", Kind.GAUGE, "1", "Circuit breaker state: 0 closed, 1 half-open, 2 open"
)
BREAKER_TRANSITIONS = MetricSpec(
    "sieve.sink.breaker.transitions",
    Kind.COUNTER,
    "{transition}",
    "Circuit breaker state changes, by the state entered",
    (BREAKER_STATE_LABEL,),
)
QUEUE_ROWS = MetricSpec("sieve.sink.queue.rows", Kind.GAUGE, "{row}", "Rows waiting in the in-memory queue")
SPOOL_SIZE = MetricSpec("sieve.sink.spool.size", Kind.GAUGE, "By", "Bytes held in the on-disk spool")

METRICS: tuple[MetricSpec, ...] = (
    ROWS_ENQUEUED,
    ROWS_WRITTEN,
    ROWS_SKIPPED,
    ROWS_SPOOLED,
    ROWS_DROPPED,
    BATCH_DURATION,
    RETRIES,
    BREAKER_STATE,
    BREAKER_TRANSITIONS,
    QUEUE_ROWS,
    SPOOL_SIZE,
)
