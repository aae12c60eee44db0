"""Every panel's PromQL names metrics and labels Sieve exports, filters by the template variables, and computes
durations as quantiles over buckets (never averages)."""

from __future__ import annotations

import dataclasses
import re

from dashboards import catalogue, promql
from pipeline.grafana import resources
from pipeline.names import ALL_METRICS, Kind
from pipeline.names import sampling as sm

PROCESS_METRICS = set(catalogue.PROCESS_SERIES)


def test_every_panel_query_passes_the_catalogue(committed_exprs):
    assert len(committed_exprs) > 60
    assert promql.catalogue_problems(committed_exprs) == []


def test_a_renamed_metric_breaks_the_check(committed_exprs, monkeypatch):
    renamed = tuple(
        dataclasses.replace(s, name="sieve.span.count") if s.name == sm.SPAN_CALLS.name else s for s in ALL_METRICS
    )
    monkeypatch.setattr(catalogue, "ALL_METRICS", renamed)
    problems = promql.catalogue_problems(committed_exprs)
    assert problems
    assert all("'sieve_span_calls_total'" in p for p in problems)
    assert any(p.startswith(f"{resources.OVERVIEW_UID}/") for p in problems)


def test_a_renamed_label_breaks_the_check(committed_exprs, monkeypatch):
    relabelled = tuple(
        dataclasses.replace(s, labels=("span.title", sm.SPAN_KIND, sm.STATUS_CODE))
        if s.name == sm.SPAN_CALLS.name
        else s
        for s in ALL_METRICS
    )
    monkeypatch.setattr(catalogue, "ALL_METRICS", relabelled)
    problems = promql.catalogue_problems(committed_exprs)
    assert any("label 'span_name' is on none of ['sieve_span_calls_total']" in p for p in problems)


def test_every_selector_is_filtered_by_job_and_instance(committed_exprs):
    for where, expr in committed_exprs:
        selectors = promql.vector_selectors(expr)
        assert selectors, where
        for selector in selectors:
            matchers = {(m.name, str(m.value)) for m in selector.matchers.matchers}
            assert ("job", "sieve_grafana_variable") in matchers, f"{where}: {selector} not filtered by $job"
            assert ("instance", "sieve_grafana_variable") in matchers, f"{where}: {selector} not by $instance"


def test_rates_use_the_rate_interval(committed_exprs):
    for where, expr in committed_exprs:
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", f"{where}: range [{window}]"


def test_durations_are_quantiles_over_buckets_never_averages(committed_exprs):
    histograms = {s.prometheus_name for s in ALL_METRICS if s.kind is Kind.HISTOGRAM}
    quantiles = 0
    for where, expr in committed_exprs:
        assert not re.search(r"\bavg(_over_time)?\s*[\(b]", expr), f"{where}: an average: {expr}"
        assert not re.search(r"_sum\b.*\)\s*/\s*.*_count\b", expr), f"{where}: sum/count is a mean: {expr}"
        names = promql.metric_names(expr)
        if any(n.endswith("_bucket") for n in names):
            assert expr.startswith("histogram_quantile("), where
            quantiles += 1
        for name in names:
            if name.endswith("_sum"):
                assert name[: -len("_sum")] in histograms and "rate(" in expr, where
    assert quantiles >= 20


def test_every_exported_family_has_a_panel(committed_exprs):
    """A metric added to pipeline.names without a panel is flagged."""
    used = set().union(*(promql.metric_names(e) for _, e in committed_exprs))
    suffixes = ("_bucket", "_sum", "_count")
    missing = [
        s.prometheus_name
        for s in ALL_METRICS
        if not ({s.prometheus_name + x for x in suffixes} if s.kind is Kind.HISTOGRAM else {s.prometheus_name}) & used
    ]
    assert not missing, f"metrics on no dashboard: {sorted(missing)}"
    assert PROCESS_METRICS & used
