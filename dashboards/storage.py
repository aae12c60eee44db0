"""Storage, as the application experienced it: operation duration by operation, where the time went (waiting for
the pool, opening a connection, holding it), the pool by state, and the slow lookups from the Postgres sink.

The split matters because the old system chased a 0.544 s "slow query" that was an outlier while the real 0.35 s
cost sat in connection set-up: the "Where the time goes" row puts pool wait, connect and use side by side, and the
slow-lookups table names the dominant phase of each statement with a trace to open.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, table
from grafana_foundation_sdk.models import dashboard as dashboard_models

from dashboards.common import (
    POSTGRES,
    PanelBuilder,
    assemble,
    base_dashboard,
    gauge,
    legend,
    quantile,
    rate,
    rate_unit,
    selector,
    ts_panel,
    unit,
)
from dashboards.postgres import SqlQueryBuilder
from pipeline.grafana.resources import DEFAULT_TRACE_URL, STORAGE_UID
from pipeline.names import storage as st

# The slow-lookup groups of the time range, worst first (monitoring.get_slow_lookup_groups, sql/): one row per
# statement shape and plan, with an example trace to open in the trace UI or with `sieve trace` (no trace backend).
SLOW_LOOKUPS_SQL = (
    "SELECT fingerprint, plan_hash, operation, calls, p50_ms, p95_ms, max_ms, dominant, "
    "example_trace_ids[1] AS trace_id, 'sieve trace ' || example_trace_ids[1] AS open_with, statement "
    "FROM monitoring.get_slow_lookup_groups($__timeFrom()::timestamptz, $__timeTo()::timestamptz)"
)
# N+1 loops (monitoring.get_n_plus_one_groups) over the last hour of the range at most: without the sampler's
# marks the function groups every statement span of its window, so the panel keeps that window bounded.
N_PLUS_ONE_SQL = (
    "SELECT parent_name AS parent, operation, occurrences, executions_p50 AS executions, total_ms_p50 AS ms_each, "
    "example_trace_ids[1] AS trace_id, 'sieve trace ' || example_trace_ids[1] AS open_with, statement "
    "FROM monitoring.get_n_plus_one_groups(greatest($__timeFrom()::timestamptz, $__timeTo()::timestamptz - "
    "interval '1 hour'), $__timeTo()::timestamptz)"
)
TRACE_URL_VARIABLE = "trace_url"
TRACE_LINK = "${" + TRACE_URL_VARIABLE + "}/trace/${__value.raw}"

OP = (st.DB_OPERATION,)
OP_LEGEND = legend((st.OPERATION_DURATION, st.DB_OPERATION))
POOL_LEGEND = legend((st.CONNECTION_WAIT, st.POOL_NAME))


def _operations() -> list[PanelBuilder]:
    panels: list[PanelBuilder] = [
        ts_panel(
            "Operations",
            "Repository operations per second by operation",
            rate_unit(st.OPERATION_DURATION, "operation"),
            [(rate(st.OPERATION_DURATION, OP, suffix="_count"), OP_LEGEND)],
            span=8,
        ),
    ]
    panels += [
        ts_panel(
            f"p{int(q * 100)} by operation",
            f"{int(q * 100)}th percentile of operation duration (pool wait + connect + execution)",
            unit(st.OPERATION_DURATION),
            [(quantile(q, st.OPERATION_DURATION, OP), OP_LEGEND)],
            span=8,
            exemplars=True,
        )
        for q in (0.5, 0.95)
    ]
    panels.append(
        ts_panel(
            "Failed operations",
            "Operations that raised, per second, by operation and error type",
            rate_unit(st.OPERATION_DURATION, "operation"),
            [
                (
                    rate(st.OPERATION_DURATION, (st.DB_OPERATION, st.ERROR_TYPE), {st.ERROR_TYPE: "!"}, "_count"),
                    legend((st.OPERATION_DURATION, st.DB_OPERATION), (st.OPERATION_DURATION, st.ERROR_TYPE)),
                )
            ],
            span=12,
        )
    )
    panels.append(
        ts_panel(
            "EXPLAIN plan captures",
            "Plan captures asked for slow reads, by outcome (captured, cached, rate_limited, queue_full, error, "
            "skipped); the plans are in the slow-lookups table's traces",
            rate_unit(st.EXPLAIN_REQUESTS),
            [(rate(st.EXPLAIN_REQUESTS, (st.EXPLAIN_OUTCOME,)), legend((st.EXPLAIN_REQUESTS, st.EXPLAIN_OUTCOME)))],
            span=12,
            stacked=True,
        )
    )
    return panels


def _time_split() -> list[PanelBuilder]:
    phases = (("wait", st.CONNECTION_WAIT), ("connect", st.CONNECTION_CREATE), ("use", st.CONNECTION_USE))
    return [
        ts_panel(
            "p95: pool wait vs connect vs use",
            "95th percentile of waiting for a pooled connection (includes opening one when none is idle), "
            "of opening a connection, and of holding one (execution)",
            unit(st.CONNECTION_WAIT),
            [
                (quantile(0.95, spec, (st.POOL_NAME,)), legend((spec, st.POOL_NAME), prefix=f"{name} "))
                for name, spec in phases
            ],
        ),
        ts_panel(
            "Time spent per second, by phase",
            "Seconds spent per second in each phase, summed over all calls (rate of the histogram sums): "
            "which phase the service pays for in total",
            unit(st.CONNECTION_WAIT),
            [
                (
                    (
                        f"sum by ({st.CONNECTION_WAIT.prometheus_label(st.POOL_NAME)}) "
                        f"(rate({selector(spec, '_sum')}[$__rate_interval]))"
                    ),
                    legend((spec, st.POOL_NAME), prefix=f"{name} "),
                )
                for name, spec in phases
            ],
        ),
        ts_panel(
            "Connections opened",
            "New connections per second by pool: each one costs a connect (TLS, auth) before the query",
            rate_unit(st.CONNECTION_CREATE, "connection"),
            [(rate(st.CONNECTION_CREATE, (st.POOL_NAME,), suffix="_count"), POOL_LEGEND)],
        ),
        ts_panel(
            "Pool connections by state",
            "Pooled connections, idle and used, by pool",
            unit(st.CONNECTION_COUNT),
            [
                (
                    gauge(st.CONNECTION_COUNT, (st.POOL_NAME, st.CONNECTION_STATE)),
                    legend((st.CONNECTION_COUNT, st.POOL_NAME), (st.CONNECTION_COUNT, st.CONNECTION_STATE)),
                )
            ],
            stacked=True,
        ),
    ]


def _override(name: str, **properties: object) -> tuple[str, list[dashboard_models.DynamicConfigValue]]:
    return name, [
        dashboard_models.DynamicConfigValue(id_val=k.replace("_", "."), value=v) for k, v in properties.items()
    ]


def slow_lookups_table() -> table.Panel:
    """The slow-lookup groups from the Postgres sink, worst p95 first, each with a trace to open."""
    panel = (
        table.Panel()
        .title("Slow lookups")
        .description(
            "Slow statement shapes of the time range from the Postgres sink (monitoring.get_slow_lookup_groups), "
            "one row per shape and plan (before and after an index are two rows): calls, latency, the dominant "
            "phase (pool wait, connect or execute) and an example trace (link, or `sieve trace <id>` without a "
            "trace UI)"
        )
        .datasource(POSTGRES)
        .span(24)
        .height(10)
        .filterable(True)
        .sort_by([common_builders.TableSortByFieldState().display_name("p95_ms").desc(True)])
        .with_target(SqlQueryBuilder().ref_id("A").raw_sql(SLOW_LOOKUPS_SQL))
    )
    overrides = [
        _override("p50_ms", unit="ms"),
        _override("p95_ms", unit="ms"),
        _override("max_ms", unit="ms"),
        _override("calls", unit="short"),
        _override("statement", custom_minWidth=400),
        _override(
            "trace_id",
            links=[{"title": "Open trace", "url": TRACE_LINK, "targetBlank": True}],
        ),
    ]
    for name, properties in overrides:
        panel = panel.override_by_name(name, properties)
    return panel


def n_plus_one_table() -> table.Panel:
    """The N+1 loops of the last hour of the range, most time first, each with a trace to open."""
    panel = (
        table.Panel()
        .title("N+1 loops (last hour of the range)")
        .description(
            "One statement shape executed 5+ times in a row under one parent span, from the Postgres sink "
            "(monitoring.get_n_plus_one_groups): fix it with one query for all the items (= ANY($1) or a join)"
        )
        .datasource(POSTGRES)
        .span(24)
        .height(8)
        .filterable(True)
        .with_target(SqlQueryBuilder().ref_id("A").raw_sql(N_PLUS_ONE_SQL))
    )
    overrides = [
        _override("ms_each", unit="ms"),
        _override("statement", custom_minWidth=400),
        _override("trace_id", links=[{"title": "Open trace", "url": TRACE_LINK, "targetBlank": True}]),
    ]
    for name, properties in overrides:
        panel = panel.override_by_name(name, properties)
    return panel


def build() -> dashboard_models.Dashboard:
    """The ``sieve-storage`` dashboard."""
    board = base_dashboard(
        STORAGE_UID,
        "Sieve / Storage",
        "Operation duration, pool wait vs connect vs execution, pool state, slow lookups with traces",
    ).with_variable(
        dashboard.TextBoxVariable(TRACE_URL_VARIABLE)
        .label("Trace UI")
        .description("Base URL of the trace UI (Jaeger) that the slow-lookups table links trace ids to")
        .default_value(DEFAULT_TRACE_URL)
    )
    return assemble(
        board,
        [
            ("Operations", _operations()),
            ("Where the time goes", _time_split()),
            ("Slow lookups (Postgres sink)", [slow_lookups_table(), n_plus_one_table()]),
        ],
    )
