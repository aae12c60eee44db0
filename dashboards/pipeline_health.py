"""Pipeline health: what the tail sampler, the log sampler and the Postgres sink saw, kept and dropped, and why.

USE for the pipeline's own resources: the sampler's buffer, the sink's queue and spool (utilisation and
saturation), the breaker and every drop counter by reason (errors). Nothing is dropped without a counter moving
(``pipeline/names/sink.py``), so the drop panels are where lost telemetry shows up.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dashboard_models

from dashboards.common import (
    PanelBuilder,
    assemble,
    base_dashboard,
    gauge,
    legend,
    quantile,
    rate,
    rate_unit,
    stat_panel,
    ts_panel,
    unit,
)
from pipeline.grafana.resources import PIPELINE_UID
from pipeline.names import logs as lg
from pipeline.names import sampling as sm
from pipeline.names import sink as sk

BREAKER_THRESHOLDS = ((None, "green"), (1.0, "orange"), (2.0, "red"))


def _now() -> list[PanelBuilder]:
    kept = rate(sm.SPANS_DECIDED, where={sm.DECISION: "sampled"})
    return [
        stat_panel(
            "Spans kept",
            "Share of the spans handed to the tail sampler that were forwarded (sampled)",
            "percentunit",
            [(f"{kept} / {rate(sm.SPANS_RECEIVED)}", "kept")],
        ),
        stat_panel(
            "Error boost",
            "Current overall error-boost factor of the tail sampler (1 = no boost)",
            unit(sm.BOOST_LEVEL),
            [(gauge(sm.BOOST_LEVEL, agg="max"), "boost")],
            thresholds=((None, "green"), (2.0, "orange")),
        ),
        stat_panel(
            "Traces buffered",
            "Traces held awaiting a decision",
            unit(sm.BUFFER_TRACES),
            [(gauge(sm.BUFFER_TRACES), "traces")],
        ),
        stat_panel(
            "Sink breaker",
            "Postgres sink circuit breaker: 0 closed, 1 half-open, 2 open (worst instance)",
            unit(sk.BREAKER_STATE),
            [(gauge(sk.BREAKER_STATE, agg="max"), "breaker")],
            thresholds=BREAKER_THRESHOLDS,
            value_names=sk.BREAKER_STATE_VALUES,
        ),
    ]


def _traces() -> list[PanelBuilder]:
    decision = legend((sm.SPANS_DECIDED, sm.DECISION))
    return [
        ts_panel(
            "Spans seen vs decided",
            "Spans handed to the sampler, and spans forwarded (sampled) or released (not_sampled, dropped)",
            rate_unit(sm.SPANS_RECEIVED),
            [(rate(sm.SPANS_RECEIVED), "seen"), (rate(sm.SPANS_DECIDED, (sm.DECISION,)), decision)],
        ),
        ts_panel(
            "Traces kept by reason",
            "Traces sampled per second by the policy that kept them",
            rate_unit(sm.TRACES_DECIDED),
            [
                (
                    rate(sm.TRACES_DECIDED, (sm.POLICY,), {sm.DECISION: "sampled"}),
                    legend((sm.TRACES_DECIDED, sm.POLICY)),
                )
            ],
            stacked=True,
        ),
        ts_panel(
            "Error boost and stress relief",
            "Error-boost factor of traces and of log category rates; 1 while stress relief sheds by trace id",
            unit(sm.BOOST_LEVEL),
            [
                (gauge(sm.BOOST_LEVEL, agg="max"), "trace boost"),
                (gauge(lg.RATE_MULTIPLIER, agg="max"), "log rate multiplier"),
                (gauge(sm.STRESS_ACTIVE, agg="max"), "stress relief"),
            ],
            span=8,
        ),
        ts_panel(
            "Sampler buffer",
            "Traces and spans held awaiting a decision (bounded: a full buffer forces early decisions)",
            unit(sm.BUFFER_SPANS),
            [(gauge(sm.BUFFER_TRACES), "traces"), (gauge(sm.BUFFER_SPANS), "spans")],
            span=8,
        ),
        ts_panel(
            "Decision latency",
            "Time from a trace's first span to its decision",
            unit(sm.DECISION_LATENCY),
            [(quantile(q, sm.DECISION_LATENCY), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)],
            span=8,
        ),
        ts_panel(
            "Spans shed and late",
            "Spans not buffered because of overload, by reason; late spans that followed a cached decision",
            rate_unit(sm.SPANS_SHED),
            [
                (rate(sm.SPANS_SHED, (sm.SHED_REASON,)), legend((sm.SPANS_SHED, sm.SHED_REASON), prefix="shed ")),
                (rate(sm.SPANS_LATE, (sm.DECISION,)), legend((sm.SPANS_LATE, sm.DECISION), prefix="late ")),
            ],
            span=8,
        ),
        ts_panel(
            "Early decisions and internal errors",
            "Traces decided before completion by the bound that forced it; exceptions caught inside the sampler",
            rate_unit(sm.TRACES_EARLY),
            [
                (rate(sm.TRACES_EARLY, (sm.BOUND,)), legend((sm.TRACES_EARLY, sm.BOUND), prefix="early ")),
                (
                    rate(sm.INTERNAL_ERRORS, (sm.ERROR_SITE,)),
                    legend((sm.INTERNAL_ERRORS, sm.ERROR_SITE), prefix="error "),
                ),
            ],
            span=8,
        ),
        ts_panel(
            "New traces",
            "Trace ids entering the sampler buffer per second",
            rate_unit(sm.TRACES_RECEIVED),
            [(rate(sm.TRACES_RECEIVED), "traces")],
            span=8,
        ),
    ]


def _logs() -> list[PanelBuilder]:
    return [
        ts_panel(
            "Log records seen by category",
            "Records offered to the log sampler (after the level check)",
            rate_unit(lg.RECORDS_SEEN),
            [(rate(lg.RECORDS_SEEN, (lg.CATEGORY,)), legend((lg.RECORDS_SEEN, lg.CATEGORY)))],
            span=6,
            stacked=True,
        ),
        ts_panel(
            "Log records kept by category and reason",
            "Kept because of severity, the category's (boosted) rate, their kept trace, or no category",
            rate_unit(lg.RECORDS_KEPT),
            [
                (
                    rate(lg.RECORDS_KEPT, (lg.CATEGORY, lg.REASON)),
                    legend((lg.RECORDS_KEPT, lg.CATEGORY), (lg.RECORDS_KEPT, lg.REASON)),
                )
            ],
            span=6,
            stacked=True,
        ),
        ts_panel(
            "Log records dropped by reason",
            "Dropped: sampled out, trace dropped, expired waiting for the trace, buffer bound, shutdown",
            rate_unit(lg.RECORDS_DROPPED),
            [(rate(lg.RECORDS_DROPPED, (lg.DROP_REASON,)), legend((lg.RECORDS_DROPPED, lg.DROP_REASON)))],
            span=6,
            stacked=True,
        ),
        ts_panel(
            "Log records pending",
            "Records held waiting for their trace's decision (bounded; expired or bound drops above)",
            unit(lg.PENDING_RECORDS),
            [(gauge(lg.PENDING_RECORDS), "pending")],
            span=6,
        ),
    ]


def _sink() -> list[PanelBuilder]:
    signal = legend((sk.ROWS_WRITTEN, sk.SIGNAL))
    return [
        ts_panel(
            "Rows enqueued, written, skipped, spooled",
            "Every row ends written, skipped (already present or past retention), spooled then written, or dropped",
            rate_unit(sk.ROWS_WRITTEN),
            [
                (rate(spec, (sk.SIGNAL,)), f"{name} {signal}")
                for name, spec in (
                    ("enqueued", sk.ROWS_ENQUEUED),
                    ("written", sk.ROWS_WRITTEN),
                    ("skipped", sk.ROWS_SKIPPED),
                    ("spooled", sk.ROWS_SPOOLED),
                )
            ],
        ),
        ts_panel(
            "Rows dropped by reason",
            "Rows lost: queue_full, spool_full, spool_error, spool_corrupt, rejected, closed",
            rate_unit(sk.ROWS_DROPPED),
            [
                (
                    rate(sk.ROWS_DROPPED, (sk.SIGNAL, sk.DROP_REASON)),
                    legend((sk.ROWS_DROPPED, sk.SIGNAL), (sk.ROWS_DROPPED, sk.DROP_REASON)),
                )
            ],
            stacked=True,
        ),
        ts_panel(
            "Sink queue",
            "Rows waiting in the in-memory queue",
            unit(sk.QUEUE_ROWS),
            [(gauge(sk.QUEUE_ROWS), "queued rows")],
            span=8,
        ),
        ts_panel(
            "Spool",
            "Bytes held in the on-disk spool (grows while Postgres is unreachable)",
            unit(sk.SPOOL_SIZE),
            [(gauge(sk.SPOOL_SIZE), "spool")],
            span=8,
        ),
        ts_panel(
            "Breaker state and transitions",
            "Breaker state (0 closed, 1 half-open, 2 open) and state changes per second by the state entered",
            unit(sk.BREAKER_STATE),
            [
                (gauge(sk.BREAKER_STATE, agg="max"), "state"),
                (
                    rate(sk.BREAKER_TRANSITIONS, (sk.BREAKER_STATE_LABEL,)),
                    legend((sk.BREAKER_TRANSITIONS, sk.BREAKER_STATE_LABEL), prefix="entered "),
                ),
            ],
            span=8,
        ),
        ts_panel(
            "Batch duration p95",
            "95th percentile of one batched insert call (including the connection checkout), by outcome",
            unit(sk.BATCH_DURATION),
            [
                (
                    quantile(0.95, sk.BATCH_DURATION, (sk.SIGNAL, sk.OUTCOME)),
                    legend((sk.BATCH_DURATION, sk.SIGNAL), (sk.BATCH_DURATION, sk.OUTCOME)),
                )
            ],
        ),
        ts_panel(
            "Retries",
            "Insert attempts that failed and were retried or spooled",
            rate_unit(sk.RETRIES),
            [(rate(sk.RETRIES, (sk.SIGNAL,)), legend((sk.RETRIES, sk.SIGNAL)))],
        ),
    ]


def build() -> dashboard_models.Dashboard:
    """The ``sieve-pipeline`` dashboard."""
    board = base_dashboard(
        PIPELINE_UID,
        "Sieve / Pipeline health",
        "Spans and logs seen vs kept by reason, error boost, sampler buffer, sink queue, spool, breaker, drops",
    )
    return assemble(
        board,
        [
            ("Now", _now()),
            ("Tail sampling", _traces()),
            ("Log sampling", _logs()),
            ("Postgres sink", _sink()),
        ],
    )
