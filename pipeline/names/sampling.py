"""Metric names and attribute keys of the sampling part of the pipeline (``pipeline/sampling``).

Two families:

* span metrics (RED) computed from every span *before* sampling, labelled like the Collector's ``spanmetrics``
  connector (``span.name``, ``span.kind``, ``status.code``);
* the tail sampler's self-metrics, shaped after the Collector ``tail_sampling`` processor's own telemetry
  (``documentation.md`` there) under a ``sieve.sampling.`` prefix.

The ``SPAN_*`` attribute keys are written on every kept span so counts can be re-weighted downstream. The values
of the self-metrics' labels are the enums below (StrEnum: each member is its string, as exported).
"""

from __future__ import annotations

from enum import StrEnum

from pipeline.names.spec import DURATION_BUCKETS_S, Kind, MetricSpec

# Attributes stamped on kept spans.
SPAN_PROBABILITY = "sieve.sampling.probability"  # float in (0, 1]: effective keep probability of the trace
SPAN_ADJUSTED_COUNT = "sieve.sampling.adjusted_count"  # float: 1 / probability
SPAN_REASON = "sieve.sampling.reason"  # policy name that kept the trace (or "stress_relief")
SPAN_CACHED_DECISION = "sieve.sampling.cached_decision"  # true when a late span followed a cached decision

# Span-metric labels (the spanmetrics connector's names).
SPAN_NAME = "span.name"
SPAN_KIND = "span.kind"
STATUS_CODE = "status.code"
OTHER_SPAN_NAME = "other"  # overflow bucket once the span-name cap is reached

# Self-metric labels.
DECISION = "sieve.sampling.decision"  # an Outcome
POLICY = "sieve.sampling.policy"  # deciding policy name, or a Reason
BOUND = "sieve.sampling.bound"  # which bound forced an early decision: an early Trigger
SHED_REASON = "sieve.sampling.shed_reason"  # a ShedReason
ERROR_SITE = "sieve.sampling.error_site"  # an ErrorSite


class Outcome(StrEnum):
    """What happened to a trace, in the Collector's metric vocabulary (the ``sieve.sampling.decision`` label)."""

    SAMPLED = "sampled"
    NOT_SAMPLED = "not_sampled"
    DROPPED = "dropped"  # a drop policy matched


class Reason(StrEnum):
    """Why a trace was kept or not when no policy's name says it: the reasons the sampler gives itself.

    A decision's reason is otherwise the deciding policy's name (``sieve.sampling.policy``, and the
    ``sieve.sampling.reason`` attribute of kept spans).
    """

    NONE = "none"  # not sampled: no policy voted to keep the trace
    BUDGET = "budget"  # not sampled: the policies kept it, the kept-volume budget thinned it out
    STRESS_RELIEF = "stress_relief"  # kept or not by trace id alone, while the buffer is over its stress level
    TOO_LARGE = "maximum_trace_size_bytes"  # not sampled: the trace grew past maximum_trace_size_bytes
    SHUTDOWN = "shutdown"  # not sampled: still buffered at shutdown with drop_pending_traces_on_shutdown


class Trigger(StrEnum):
    """What made the trace buffer decide a trace; the early triggers (a bound was hit) are the ``bound`` label."""

    ROOT = "root"  # decision_wait_after_root_received after the first local root span ended
    DECISION_WAIT = "decision_wait"  # decision_wait after the trace's first span
    INGEST = "ingest"  # span-ingest: a terminal verdict as a span arrived
    FLUSH = "flush"  # force_flush or shutdown
    LATE = "late"  # a span of a trace already decided, following the cached decision
    STRESS_RELIEF = "stress_relief"  # a span of a new trace under stress relief
    # Early: a bound was hit (sieve.sampling.traces.decided_early{bound}).
    NUM_TRACES = "num_traces"  # the oldest trace, to make room for a new one
    MAX_BUFFERED_SPANS = "max_buffered_spans"  # the oldest trace, until the buffer is within its span bound
    SPAN_LIMIT = "span_limit"  # the trace reached max_spans_per_trace
    TOO_LARGE = "maximum_trace_size_bytes"  # the trace grew past maximum_trace_size_bytes (not sampled)
    SHUTDOWN = "shutdown"  # released undecided at shutdown (drop_pending_traces_on_shutdown)


class ShedReason(StrEnum):
    """Why spans were not buffered for a tail decision (the ``shed_reason`` label)."""

    QUEUE_FULL = "queue_full"  # the intake queue was full (counted on the application's thread)
    STRESS_RELIEF = "stress_relief"  # kept or dropped by trace id alone while the buffer is over its stress level


class ErrorSite(StrEnum):
    """Where the tail sampler caught an exception instead of letting it reach the application (``error_site``)."""

    WORKER = "worker"  # a whole worker cycle
    INTAKE = "intake"  # one span entering the buffer
    DOWNSTREAM = "downstream"  # the exporters' processor, handed a kept span
    LISTENER = "listener"  # a decision listener (the log sampler)
    OBSERVER = "observer"  # a span observer (every span, before sampling)


SPAN_CALLS = MetricSpec(
    "sieve.span.calls",
    Kind.COUNTER,
    "{span}",
    "Every ended span, before sampling, by name, kind and status",
    (SPAN_NAME, SPAN_KIND, STATUS_CODE),
)
SPAN_ERRORS = MetricSpec(
    "sieve.span.errors",
    Kind.COUNTER,
    "{span}",
    "Ended spans with status ERROR, before sampling",
    (SPAN_NAME, SPAN_KIND),
)
SPAN_DURATION = MetricSpec(
    "sieve.span.duration",
    Kind.HISTOGRAM,
    "s",
    "Span duration, every span before sampling",
    (SPAN_NAME, SPAN_KIND, STATUS_CODE),
    buckets=DURATION_BUCKETS_S,
)

TRACES_RECEIVED = MetricSpec(
    "sieve.sampling.traces.received", Kind.COUNTER, "{trace}", "New trace ids entering the tail sampler buffer"
)
TRACES_DECIDED = MetricSpec(
    "sieve.sampling.traces.decided",
    Kind.COUNTER,
    "{trace}",
    "Tail decisions by outcome and deciding policy",
    (DECISION, POLICY),
)
SPANS_RECEIVED = MetricSpec("sieve.sampling.spans.received", Kind.COUNTER, "{span}", "Spans handed to the sampler")
SPANS_DECIDED = MetricSpec(
    "sieve.sampling.spans.decided",
    Kind.COUNTER,
    "{span}",
    "Spans forwarded (sampled) or released (not_sampled, dropped), by deciding policy",
    (DECISION, POLICY),
)
TRACES_EARLY = MetricSpec(
    "sieve.sampling.traces.decided_early",
    Kind.COUNTER,
    "{trace}",
    "Traces decided before they were complete because a bound was hit",
    (BOUND,),
)
SPANS_LATE = MetricSpec(
    "sieve.sampling.spans.late",
    Kind.COUNTER,
    "{span}",
    "Spans that arrived after their trace was decided and followed the cached decision",
    (DECISION,),
)
SPANS_SHED = MetricSpec(
    "sieve.sampling.spans.shed",
    Kind.COUNTER,
    "{span}",
    "Spans not buffered because of overload (intake queue full or stress relief)",
    (SHED_REASON,),
)
DECISION_LATENCY = MetricSpec(
    "sieve.sampling.decision.latency",
    Kind.HISTOGRAM,
    "s",
    "Time from a trace's first span to its decision",
    buckets=DURATION_BUCKETS_S,
)
BUFFER_TRACES = MetricSpec("sieve.sampling.buffer.traces", Kind.GAUGE, "{trace}", "Traces held awaiting decision")
BUFFER_SPANS = MetricSpec("sieve.sampling.buffer.spans", Kind.GAUGE, "{span}", "Spans held awaiting decision")
BOOST_LEVEL = MetricSpec(
    "sieve.sampling.boost.level", Kind.GAUGE, "1", "Current overall error-boost factor (1 = no boost)"
)
STRESS_ACTIVE = MetricSpec(
    "sieve.sampling.stress.active", Kind.GAUGE, "1", "1 while stress relief sheds deterministically by trace id"
)
INTERNAL_ERRORS = MetricSpec(
    "sieve.sampling.internal.errors",
    Kind.COUNTER,
    "{error}",
    "Exceptions caught inside the sampler instead of reaching the application",
    (ERROR_SITE,),
)

METRICS: tuple[MetricSpec, ...] = (
    SPAN_CALLS,
    SPAN_ERRORS,
    SPAN_DURATION,
    TRACES_RECEIVED,
    TRACES_DECIDED,
    SPANS_RECEIVED,
    SPANS_DECIDED,
    TRACES_EARLY,
    SPANS_LATE,
    SPANS_SHED,
    DECISION_LATENCY,
    BUFFER_TRACES,
    BUFFER_SPANS,
    BOOST_LEVEL,
    STRESS_ACTIVE,
    INTERNAL_ERRORS,
)
