"""The sink's settings: one frozen dataclass, validated on construction.

Defaults suit one process writing a few thousand rows a second to a nearby Postgres. ``pipeline.config`` is
expected to carry a ``sink`` section with these same names and build this object from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from pipeline.errors import ConfigError

_MIB = 1024 * 1024


@dataclass(frozen=True)
class SinkSettings:
    """How the Postgres sink batches, retries, spools and keeps data.

    Sizes are in rows unless the name says bytes; times in seconds.
    """

    #: Rows per insert call (one round trip). About 1,000 is where the batched RPC is ~25x one-row calls and
    #: still ~0.9x an idempotent COPY (docs/background.md section 5).
    batch_size: int = 1000
    #: A partial batch is sent after this long.
    flush_interval_s: float = 1.0
    #: Rows the in-memory queue holds; beyond it an enqueue drops and counts instead of blocking.
    queue_size: int = 50_000
    #: Where batches wait while Postgres is unreachable; replayed in order when it returns, and on next start.
    spool_dir: Path = Path(".sieve/spool")
    #: Disk the spool may use; a batch that would exceed it is dropped and counted.
    spool_budget_bytes: int = 256 * _MIB
    #: Size at which a spool segment file is closed and a new one begun.
    spool_segment_bytes: int = 4 * _MIB
    #: fsync each spooled batch: survives a machine crash, not only a process crash, at a disk flush per batch.
    spool_fsync: bool = False
    #: Attempts per batch (first try included) before it goes to the spool.
    max_attempts: int = 3
    #: Exponential backoff between attempts: base * 2**(attempt-1), capped, with equal jitter.
    backoff_base_s: float = 0.1
    backoff_max_s: float = 2.0
    #: Consecutive failures that open the circuit breaker. A write that misses its deadline opens it at once.
    breaker_failure_threshold: int = 3
    #: How long the breaker stays open before it probes the database (``SELECT 1`` on a thread of its own, so
    #: the worker keeps moving rows to the spool meanwhile); doubles on each failed probe, up to the max. The
    #: max is short on purpose: it bounds how late replay starts after the database returns (it used to be 30 s),
    #: and a probe costs one round trip, bounded by ``probe_timeout_s``.
    breaker_reset_s: float = 0.5
    breaker_reset_max_s: float = 5.0
    #: Days of data kept; older daily partitions are dropped by monitoring.maintain().
    retention_days: int = 14
    #: Daily partitions made ahead of time.
    partitions_ahead_days: int = 2
    #: How often the worker runs monitoring.maintain().
    maintenance_interval_s: float = 3600.0
    #: libpq connect_timeout (whole seconds, at least 2: libpq's own floor) and the pool checkout timeout: both
    #: short, so an outage fails fast into the breaker instead of stalling the worker. The checkout timeout also
    #: bounds the pool's liveness check of its connection.
    connect_timeout_s: float = 2.0
    checkout_timeout_s: float = 1.0
    #: Server-side statement_timeout on the sink's connections. Below ``write_timeout_s``, so a slow but live
    #: server ends a statement with its own clean error before the client gives up on it.
    statement_timeout_s: float = 4.0
    #: Client-side deadline of each insert (and of partition maintenance): past it the connection's socket is
    #: shut down, the call fails, the breaker opens and the batch goes to the spool. This is what bounds a hung
    #: database (stopped processes, a partition), which never enforces its statement_timeout. It also sets the
    #: TCP liveness parameters of remote DSNs: ``tcp_user_timeout`` to this, keepalives idle this long, probed
    #: every third of it, three times (unless the DSN sets them). While a write hangs, rows accepted meanwhile
    #: wait in memory: this is also the longest such wait.
    write_timeout_s: float = 5.0
    #: Deadline of one breaker probe (``SELECT 1``).
    probe_timeout_s: float = 1.0
    #: ``health()`` (``/readyz``) says not ready once rows have waited this many flush intervals (3 s by
    #: default) without a successful write: a stalled or hung database, not a brief blip.
    stall_flush_intervals: int = 3
    #: Written into each event's ``source`` column (e.g. the service name).
    source: str = ""

    def __post_init__(self) -> None:
        positive_ints = (
            "batch_size",
            "queue_size",
            "spool_segment_bytes",
            "max_attempts",
            "breaker_failure_threshold",
            "retention_days",
            "stall_flush_intervals",
        )
        for name in positive_ints:
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("spool_budget_bytes", self.spool_budget_bytes, minimum=0)
        _check_int("partitions_ahead_days", self.partitions_ahead_days, minimum=0, maximum=31)
        if self.retention_days > 3650:
            raise ConfigError("sink.retention_days", self.retention_days, "an integer from 1 to 3650")
        for f in fields(self):
            if f.name.endswith("_s"):
                value = getattr(self, f.name)
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise ConfigError(f"sink.{f.name}", value, "a finite number of seconds")
                if value <= 0:
                    raise ConfigError(f"sink.{f.name}", value, "a number of seconds greater than 0")
        if self.backoff_max_s < self.backoff_base_s:
            raise ConfigError(
                "sink.backoff_max_s", self.backoff_max_s, f">= sink.backoff_base_s ({self.backoff_base_s})"
            )
        if self.breaker_reset_max_s < self.breaker_reset_s:
            raise ConfigError(
                "sink.breaker_reset_max_s",
                self.breaker_reset_max_s,
                f">= sink.breaker_reset_s ({self.breaker_reset_s})",
            )
        if self.batch_size > 10_000:
            # monitoring.config.max_batch_rows defaults to 10,000; a larger batch would be refused by the database.
            raise ConfigError("sink.batch_size", self.batch_size, "an integer from 1 to 10000")
        if not isinstance(self.spool_dir, Path):
            object.__setattr__(self, "spool_dir", Path(self.spool_dir))


def _check_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    ok = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= minimum
        and (maximum is None or value <= maximum)
    )
    if not ok:
        accepted = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"
        raise ConfigError(f"sink.{name}", value, accepted)
