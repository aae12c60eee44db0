"""Service overview: RED per operation from the span metrics, which count every span before sampling.

An operation is a server span (one per inbound WebSocket message, named by its op, plus the handshake); the
rows below it show the client and internal spans the operations spend their time in. Durations are quantiles of
``sieve.span.duration`` buckets summed ``by (le, span_name)``.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dashboard_models

from dashboards.common import (
    RATE_WINDOW,
    TARGET_MATCHERS,
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
from pipeline.grafana.resources import OVERVIEW_UID
from pipeline.names import runtime
from pipeline.names import sampling as s

SERVER = {s.SPAN_KIND: "SERVER"}
# What the alert rules call a request (dashboards/alerts/sieve.rules.yml): an inbound message, not the handshake
# and not malformed client input (counted apart, like a 4xx). The headline stats use the same selector, so the
# error ratio on screen is the one the burn-rate alerts page on.
REQUESTS = {s.SPAN_KIND: "SERVER", s.SPAN_NAME: "!~websocket handshake|invalid"}
NOT_SERVER = {s.SPAN_KIND: "!SERVER"}
BY_OP = (s.SPAN_NAME,)
BY_SPAN = (s.SPAN_NAME, s.SPAN_KIND)
OP_LEGEND = legend((s.SPAN_CALLS, s.SPAN_NAME))
SPAN_LEGEND = legend((s.SPAN_CALLS, s.SPAN_NAME), (s.SPAN_CALLS, s.SPAN_KIND))


def error_ratio(group: tuple[str, ...], where: dict[str, str]) -> str:
    """Errors / calls; ``or ... * 0`` keeps operations that had no error at all on the graph as 0."""
    errors = rate(s.SPAN_ERRORS, group, where)
    calls = rate(s.SPAN_CALLS, group, where)
    return f"({errors} or {calls} * 0) / {calls}"


def _headline() -> list[PanelBuilder]:
    return [
        stat_panel(
            "Requests",
            "Inbound WebSocket messages per second (server spans without handshakes and malformed input), "
            "before sampling",
            rate_unit(s.SPAN_CALLS),
            [(rate(s.SPAN_CALLS, where=REQUESTS), "calls")],
        ),
        stat_panel(
            "Error ratio",
            "Requests with status ERROR / all requests: the ratio the error-budget alerts burn on",
            "percentunit",
            [(error_ratio((), REQUESTS), "error ratio")],
            thresholds=((None, "green"), (0.01, "orange"), (0.05, "red")),
        ),
        stat_panel(
            "p95 duration",
            "95th percentile of request duration, from the histogram buckets of every instance",
            unit(s.SPAN_DURATION),
            [(quantile(0.95, s.SPAN_DURATION, where=REQUESTS), "p95")],
            thresholds=((None, "green"), (0.5, "orange"), (1.0, "red")),
        ),
        stat_panel(
            "p99 duration",
            "99th percentile of request duration",
            unit(s.SPAN_DURATION),
            [(quantile(0.99, s.SPAN_DURATION, where=REQUESTS), "p99")],
            thresholds=((None, "green"), (1.0, "orange"), (2.5, "red")),
        ),
    ]


def _red(where: dict[str, str], group: tuple[str, ...], fmt: str, what: str) -> list[PanelBuilder]:
    return [
        ts_panel(
            "Calls",
            f"{what} per second",
            rate_unit(s.SPAN_CALLS),
            [(rate(s.SPAN_CALLS, group, where), fmt)],
            span=8,
        ),
        ts_panel(
            "Errors",
            f"{what} with status ERROR per second",
            rate_unit(s.SPAN_ERRORS),
            [(rate(s.SPAN_ERRORS, group, where), fmt)],
            span=8,
            exemplars=True,
        ),
        ts_panel("Error ratio", "Errors / calls", "percentunit", [(error_ratio(group, where), fmt)], span=8),
    ]


def _durations(where: dict[str, str], group: tuple[str, ...], fmt: str, what: str) -> list[PanelBuilder]:
    return [
        ts_panel(
            f"p{int(q * 100)} duration",
            f"{int(q * 100)}th percentile of {what} duration (histogram_quantile over buckets summed by le)",
            unit(s.SPAN_DURATION),
            [(quantile(q, s.SPAN_DURATION, group, where), fmt)],
            span=8,
            exemplars=True,
        )
        for q in (0.5, 0.95, 0.99)
    ]


def _runtime() -> list[PanelBuilder]:
    return [
        ts_panel(
            "Event loop lag",
            "How late the event loop ran a timer: a blocking call stalls every connection",
            unit(runtime.LOOP_LAG),
            [(quantile(q, runtime.LOOP_LAG), f"p{int(q * 100)}") for q in (0.5, 0.99)],
            span=6,
        ),
        ts_panel(
            "Tasks",
            "Tasks alive on the event loop: a steady climb is a leak (handlers or sends that never finish)",
            unit(runtime.TASKS),
            [(gauge(runtime.TASKS), "tasks")],
            span=6,
        ),
        ts_panel(
            "CPU",
            "Process CPU seconds per second (1 = one core busy)",
            "percentunit",
            [
                (
                    f"sum by (instance) (rate(process_cpu_seconds_total{{{TARGET_MATCHERS}}}[{RATE_WINDOW}]))",
                    "{{instance}}",
                )
            ],
            span=6,
        ),
        ts_panel(
            "Resident memory",
            "Process resident set size",
            "bytes",
            [(f"sum by (instance) (process_resident_memory_bytes{{{TARGET_MATCHERS}}})", "{{instance}}")],
            span=6,
        ),
    ]


def build() -> dashboard_models.Dashboard:
    """The ``sieve-overview`` dashboard."""
    board = base_dashboard(
        OVERVIEW_UID,
        "Sieve / Service overview",
        "Rate, errors and duration per operation, from span metrics computed before sampling",
    )
    return assemble(
        board,
        [
            ("Now: server spans", _headline()),
            ("Rate and errors per operation (server spans)", _red(SERVER, BY_OP, OP_LEGEND, "Server spans")),
            ("Duration per operation (server spans)", _durations(SERVER, BY_OP, OP_LEGEND, "server span")),
            (
                "Inside the operations: client and internal spans",
                _red(NOT_SERVER, BY_SPAN, SPAN_LEGEND, "Client and internal spans"),
            ),
            (
                "Duration of client and internal spans",
                _durations(NOT_SERVER, BY_SPAN, SPAN_LEGEND, "client and internal span"),
            ),
            ("Runtime", _runtime()),
        ],
    )
