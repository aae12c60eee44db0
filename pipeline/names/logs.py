"""Metric names, attribute keys and sampling reasons of the log path (``collectors/logs.py``,
``pipeline/sampling/logs``).

Every kept record carries ``sieve.sampling.probability`` and ``sieve.sampling.reason`` (the same keys as kept
spans), so a count of records can be re-weighted downstream. The seen / kept / dropped counters are exported as
observable counters read from plain integers: a synchronous ``counter.add`` costs 2-5 us, more than the whole
decision for a dropped line.
"""

from __future__ import annotations

from typing import Final

from pipeline.names.sampling import SPAN_PROBABILITY, SPAN_REASON
from pipeline.names.spec import Kind, MetricSpec

# Attributes on kept records (also the keys under which the bridge stores them in loguru's ``record["extra"]``).
PROBABILITY: Final = SPAN_PROBABILITY  # float in (0, 1]: the keep probability of the path that kept the record
REASON: Final = SPAN_REASON  # one of the REASON_* values below
CATEGORY: Final = "sieve.log.category"  # the record's category, or NO_CATEGORY
LOGGER_NAME: Final = "sieve.log.logger"  # loguru's record["name"] (module, or the stdlib logger's name)

# Trace correlation, kept in record["extra"] as lowercase hex (usable in format strings: "{extra[trace_id]}").
TRACE_ID_EXTRA: Final = "trace_id"
SPAN_ID_EXTRA: Final = "span_id"

# Why a record was kept.
REASON_SEVERITY: Final = "severity"  # WARNING and above: always kept
REASON_CATEGORY: Final = "category"  # won the draw at its category's (possibly boosted) rate
REASON_TRACE: Final = "trace"  # lost the draw but its trace was kept by the tail sampler
REASON_UNSAMPLED: Final = "unsampled"  # no category: never sampled (plain loguru or stdlib calls)

# Why a record was dropped.
DROP_SAMPLED_OUT: Final = "sampled_out"  # lost the draw, outside any (sampled) trace
DROP_TRACE_DROPPED: Final = "trace_dropped"  # lost the draw and its trace was dropped
DROP_EXPIRED: Final = "expired"  # waited longer than max_wait for its trace's decision
DROP_BOUND: Final = "bound"  # the pending buffer (total or per trace) was full
DROP_SHUTDOWN: Final = "shutdown"  # still waiting when the sampler was flushed at shutdown

NO_CATEGORY: Final = "none"  # category label of records logged without a category

# The sampler's answer "wait for this record's trace": compared by identity, so both sides import this object.
HOLD: Final[tuple[float, str]] = (0.0, "hold")

# Metric labels.
LEVEL: Final = "sieve.log.level"  # loguru level name (TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, CRITICAL)
DROP_REASON: Final = "sieve.log.drop_reason"

RECORDS_SEEN = MetricSpec(
    "sieve.logs.records.seen",
    Kind.COUNTER,
    "{record}",
    "Log records offered to the sampler (after the level check), by category and level",
    (CATEGORY, LEVEL),
)
RECORDS_KEPT = MetricSpec(
    "sieve.logs.records.kept",
    Kind.COUNTER,
    "{record}",
    "Log records kept, by category, level and reason (severity, category, trace, unsampled)",
    (CATEGORY, LEVEL, REASON),
)
RECORDS_DROPPED = MetricSpec(
    "sieve.logs.records.dropped",
    Kind.COUNTER,
    "{record}",
    "Log records dropped, by category and reason (sampled_out, trace_dropped, expired, bound, shutdown)",
    (CATEGORY, DROP_REASON),
)
PENDING_RECORDS = MetricSpec(
    "sieve.logs.pending.records", Kind.GAUGE, "{record}", "Log records held waiting for their trace's decision"
)
RATE_MULTIPLIER = MetricSpec(
    "sieve.logs.rate.multiplier", Kind.GAUGE, "1", "Current error-boost multiplier of category rates (1 = none)"
)

METRICS: tuple[MetricSpec, ...] = (
    RECORDS_SEEN,
    RECORDS_KEPT,
    RECORDS_DROPPED,
    PENDING_RECORDS,
    RATE_MULTIPLIER,
)
