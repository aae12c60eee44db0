"""Shared pieces of Sieve's dashboards: data sources, variables, PromQL built from ``pipeline.names``, panels.

Every expression is built from a ``MetricSpec`` and its attribute keys, never typed by hand, so renaming a metric
or a label in ``pipeline.names`` changes the generated JSON (and the committed-JSON test says so). Durations are
quantiles over the server-side histogram buckets, summed ``by (le, ...)`` before ``histogram_quantile``: never an
average, never an average of averages (the old system's p95 was computed that way in a browser).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models

from pipeline.grafana import resources
from pipeline.names import Kind, MetricSpec

PROMETHEUS = common_models.DataSourceRef(type_val=resources.PROMETHEUS_TYPE, uid=resources.PROMETHEUS_UID)
POSTGRES = common_models.DataSourceRef(type_val=resources.POSTGRES_TYPE, uid=resources.POSTGRES_UID)

# Every series is filtered by the two template variables. Sieve's /metrics labels its series with neither a service
# name nor a host: ``service_name`` sits on ``target_info`` only. Prometheus adds ``job`` and ``instance`` from the
# scrape config to every series (with OTLP ingestion, job = service.name), so those are what the variables select:
# one job, and any of its instances (summing instances of one job is right; summing jobs may double count).
TARGET_MATCHERS = 'job=~"$job", instance=~"$instance"'
RATE_WINDOW = "$__rate_interval"

Query = tuple[str, str]  # (PromQL, legend format)
PanelBuilder = cogbuilder.Builder[dashboard_models.Panel]
Section = tuple[str, Sequence[PanelBuilder]]  # a row title and the panels under it


def _label(spec: MetricSpec, attribute: str) -> str:
    if attribute not in spec.labels:
        raise ValueError(f"{spec.name} has no attribute {attribute!r} (has {spec.labels})")
    return spec.prometheus_label(attribute)


def by(spec: MetricSpec, *attributes: str) -> list[str]:
    """Prometheus label names of ``attributes``, checked against the spec's declared labels."""
    return [_label(spec, a) for a in attributes]


def selector(spec: MetricSpec, suffix: str = "", where: dict[str, str] | None = None) -> str:
    """``name{job=~"$job", instance=~"$instance", <attribute>="<value>"...}``; a value starting with ``!`` negates,
    ``!~`` is a negated regular expression."""
    matchers = [TARGET_MATCHERS]
    for attribute, condition in (where or {}).items():
        if condition.startswith("!~"):
            op, value = "!~", condition[2:]
        else:
            op, value = ("!=", condition[1:]) if condition.startswith("!") else ("=", condition)
        matchers.append(f'{_label(spec, attribute)}{op}"{value}"')
    return f"{spec.prometheus_name}{suffix}{{{', '.join(matchers)}}}"


def _sum(labels: Sequence[str], inner: str) -> str:
    return f"sum by ({', '.join(labels)}) ({inner})" if labels else f"sum({inner})"


def rate(spec: MetricSpec, group: Sequence[str] = (), where: dict[str, str] | None = None, suffix: str = "") -> str:
    """Per-second rate of a counter (or a histogram's ``_count``), summed by ``group`` attributes."""
    if spec.kind is not Kind.COUNTER and not suffix:
        raise ValueError(f"rate() of {spec.name}, a {spec.kind}: pass suffix='_count' for a histogram")
    return _sum(by(spec, *group), f"rate({selector(spec, suffix, where)}[{RATE_WINDOW}])")


def quantile(q: float, spec: MetricSpec, group: Sequence[str] = (), where: dict[str, str] | None = None) -> str:
    """``histogram_quantile`` over the buckets of every matching series, summed by ``le`` and ``group``."""
    if spec.kind is not Kind.HISTOGRAM:
        raise ValueError(f"quantile of {spec.name}, a {spec.kind}, not a histogram")
    inner = f"rate({selector(spec, '_bucket', where)}[{RATE_WINDOW}])"
    return f"histogram_quantile({q}, {_sum(['le', *by(spec, *group)], inner)})"


def gauge(spec: MetricSpec, group: Sequence[str] = (), where: dict[str, str] | None = None, agg: str = "sum") -> str:
    """A gauge (or up/down counter) across the selected instances, aggregated by ``group``."""
    if spec.kind not in (Kind.GAUGE, Kind.UP_DOWN_COUNTER):
        raise ValueError(f"gauge() of {spec.name}, a {spec.kind}")
    labels = by(spec, *group)
    inner = selector(spec, "", where)
    return f"{agg} by ({', '.join(labels)}) ({inner})" if labels else f"{agg}({inner})"


def legend(*attributes_of: tuple[MetricSpec, str], prefix: str = "") -> str:
    """Legend format naming the given labels, e.g. ``{{span_name}} {{span_kind}}``."""
    return prefix + " ".join("{{" + _label(spec, a) + "}}" for spec, a in attributes_of)


def unit(spec: MetricSpec) -> str:
    """Grafana unit of a value of ``spec`` (a gauge reading, a duration quantile), from the metric table's unit."""
    return {"s": "s", "ms": "ms", "By": "bytes", "1": "none", "%": "percent"}.get(spec.unit, "short")


def rate_unit(spec: MetricSpec, counted: str | None = None) -> str:
    """Grafana unit of a per-second rate of ``spec``: ``{span}`` -> ``span/s``, ``By`` -> ``Bps``.

    The rate of a histogram is the rate of its ``_count``, observations per second whatever the histogram's own
    unit (seconds of an operation are not what is counted): ``counted`` names them (``"operation"``).
    """
    if spec.kind is Kind.HISTOGRAM:
        if not counted:
            raise ValueError(f"rate of {spec.name}'s _count: name what is counted (counted='operation')")
        return f"suffix:{counted}/s"
    if spec.unit == "By":
        return "Bps"
    if spec.unit.startswith("{") and spec.unit.endswith("}"):
        return f"suffix:{spec.unit[1:-1]}/s"
    return "suffix:/s" if spec.unit == "1" else f"suffix:{spec.unit}/s"


def _targets(queries: Iterable[Query], exemplars: bool = False) -> list[prometheus.Dataquery]:
    # refIds A, B, C... explicitly: the SDK leaves them out, and Grafana needs them for overrides and expressions.
    targets = [
        prometheus.Dataquery().expr(expr).legend_format(fmt).ref_id(chr(ord("A") + i)).range()
        for i, (expr, fmt) in enumerate(queries)
    ]
    return [t.exemplar(True) for t in targets] if exemplars else targets


def ts_panel(
    title: str,
    description: str,
    unit_id: str,
    queries: Sequence[Query],
    *,
    span: int = 12,
    height: int = 8,
    stacked: bool = False,
    min_zero: bool = True,
    exemplars: bool = False,
) -> timeseries.Panel:
    """A time series panel on the Prometheus data source, legend shown, shared tooltip sorted by value.

    ``exemplars`` asks Grafana for the series' exemplars: dots on the graph that open the trace they name (the
    data source's ``exemplarTraceIdDestinations``). Sieve's exemplars come only from kept traces
    (``pipeline/exemplars``), on the latency histograms and error counters listed in ``pipeline.exemplars.sources``.
    """
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit_id)
        .span(span)
        .height(height)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common_models.TooltipDisplayMode.MULTI)
            .sort(common_models.SortOrder.DESCENDING)
        )
    )
    if min_zero:
        panel = panel.min(0)
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL))
    for target in _targets(queries, exemplars):
        panel = panel.with_target(target)
    return panel


def stat_panel(
    title: str,
    description: str,
    unit_id: str,
    queries: Sequence[Query],
    *,
    span: int = 6,
    height: int = 4,
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
    value_names: dict[str, int] | None = None,
) -> stat.Panel:
    """A single-value panel showing the last value, with a sparkline and threshold colours.

    ``value_names`` maps a state's name to the number a gauge reports for it (shown as the name).
    """
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit_id)
        .span(span)
        .height(height)
        .graph_mode(common_models.BigValueGraphMode.AREA)
        .color_mode(common_models.BigValueColorMode.VALUE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(
            dashboard.ThresholdsConfig()
            .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
            .steps([dashboard_models.Threshold(value=v, color=c) for v, c in thresholds])
        )
    )
    if value_names:
        options = {str(v): dashboard_models.ValueMappingResult(text=k, index=v) for k, v in value_names.items()}
        panel = panel.mappings([dashboard_models.ValueMap(options=options)])
    for target in _targets(queries):
        panel = panel.with_target(target)
    return panel


def base_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    """A Sieve dashboard: fixed uid, ``sieve`` tag, job/instance variables, links to the other Sieve dashboards."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["sieve"])
        .editable()
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(
            # One job at a time, never "All": in the compose stack Sieve's series arrive twice, scraped directly
            # (job "sieve") and re-exported by the collector tier, and a sum over both would double every count.
            dashboard.QueryVariable("job")
            .label("Service (job)")
            .description("Prometheus job of the scraped service")
            .datasource(PROMETHEUS)
            .query("label_values(target_info, job)")
            .current(dashboard_models.VariableOption(text=resources.DEFAULT_JOB, value=resources.DEFAULT_JOB))
            .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
            .multi(False)
            .include_all(False)
        )
        .with_variable(
            dashboard.QueryVariable("instance")
            .label("Instance")
            .datasource(PROMETHEUS)
            .query('label_values(target_info{job=~"$job"}, instance)')
            .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        .link(
            dashboard.DashboardLink("Sieve")
            .type(dashboard_models.DashboardLinkType.DASHBOARDS)
            .tags(["sieve"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def assemble(board: dashboard.Dashboard, sections: Sequence[Section]) -> dashboard_models.Dashboard:
    """Add each section as a row followed by its panels, then build with panel ids 1..n.

    The SDK lays panels out left to right from their ``span``/``height`` and starts a new line when a row is full;
    it leaves panel ids out, and Grafana wants them unique within a dashboard.
    """
    for title, panels in sections:
        board = board.with_row(dashboard.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    model = board.build()
    for number, built in enumerate(model.panels or [], start=1):
        built.id_val = number
    return model


def to_json(model: dashboard_models.Dashboard) -> str:
    """The committed form: sorted keys, two-space indent, trailing newline (stable diffs)."""
    return JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False).encode(model) + "\n"


def to_dict(model: dashboard_models.Dashboard) -> dict[str, Any]:
    """The model as plain JSON data."""
    data: dict[str, Any] = json.loads(to_json(model))
    return data
