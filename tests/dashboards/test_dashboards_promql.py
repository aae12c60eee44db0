"""Unit tests of dashboards.promql: Grafana variable substitution, metric names, the catalogue check."""

from __future__ import annotations

import promql_parser as pp
import pytest

from dashboards.catalogue import build_catalogue
from dashboards.promql import catalogue_problems, metric_names, substitute_grafana_variables
from pipeline.names import ALL_METRICS, Kind

CALLS = 'sieve_span_calls_total{job=~"$job", instance=~"$instance"}'


@pytest.mark.parametrize(
    ("grafana", "expected"),
    [
        ("rate(x[$__rate_interval])", "rate(x[5m])"),
        ("rate(x[${__rate_interval}])", "rate(x[5m])"),
        ("increase(x[$__range])", "increase(x[1h])"),
        ("rate(x[$__interval])", "rate(x[1m])"),
        ("max_over_time(x[$window])", "max_over_time(x[5m])"),
        ("max_over_time(rate(x[5m])[$__range:$__interval])", "max_over_time(rate(x[5m])[1h:1m])"),
        (
            'x{job=~"$job", instance=~"${instance:regex}"}',
            'x{job=~"sieve_grafana_variable", instance=~"sieve_grafana_variable"}',
        ),
        ('x{job="[[job]]"}', 'x{job="sieve_grafana_variable"}'),
        ("x offset $__range", "x offset 1h"),
        ("x offset -${shift}", "x offset -5m"),
        ("topk($n, x)", "topk(1, x)"),
        ("x / $__range_s", "x / 3600"),
        ("x > $__interval_ms", "x > 60000"),
        ('x{a="$"}', 'x{a="$"}'),
        ('x{a="it\\"s $v"}', 'x{a="it\\"s sieve_grafana_variable"}'),
        ("x{a='$v'} + y{b=`$w`}", "x{a='sieve_grafana_variable'} + y{b=`sieve_grafana_variable`}"),
        ("no_variables_here", "no_variables_here"),
    ],
)
def test_substitution(grafana, expected):
    assert substitute_grafana_variables(grafana) == expected
    pp.parse(substitute_grafana_variables(grafana))  # and the result parses


def test_unsubstituted_variables_do_not_parse():
    with pytest.raises(ValueError, match="unexpected character"):
        pp.parse("rate(x[$__rate_interval])")


def test_metric_names_walks_every_selector():
    expr = (
        "histogram_quantile(0.9, sum by (le) (rate(a_bucket[$__rate_interval]))) "
        '/ on (job) group_left sum by (job) ({__name__="b", job=~"$job"}) '
        '+ max_over_time(c[$__range:]) + label_replace(d, "x", "$1", "job", "(.*)") + vector(1)'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d"}


def test_metric_names_raises_on_invalid_promql():
    with pytest.raises(ValueError, match="parenthesis"):
        metric_names("sum(rate(x[5m])")


def test_catalogue_knows_every_exported_series():
    catalogue = build_catalogue()
    for spec in ALL_METRICS:
        names = (
            [spec.prometheus_name + s for s in ("_bucket", "_sum", "_count")]
            if spec.kind is Kind.HISTOGRAM
            else [spec.prometheus_name]
        )
        for name in names:
            assert name in catalogue
            for attribute in spec.labels:
                assert catalogue.has_label(name, spec.prometheus_label(attribute))
            assert catalogue.has_label(name, "job") and catalogue.has_label(name, "instance")
    assert "sieve_span_duration_seconds" not in catalogue  # a histogram has no series of its bare name
    assert catalogue.has_label("sieve_span_duration_seconds_bucket", "le")
    assert not catalogue.has_label("sieve_span_duration_seconds_count", "le")


def test_good_expressions_have_no_problems():
    exprs = [
        ("red", f"sum by (span_name) (rate({CALLS}[$__rate_interval]))"),
        (
            "p95",
            (
                "histogram_quantile(0.95, sum by (le, span_name) "
                '(rate(sieve_span_duration_seconds_bucket{job=~"$job"}[5m])))'
            ),
        ),
        ("prometheus", 'up{job="sieve"} == 0 or absent(up{job="sieve"}) or scrape_duration_seconds > 1'),
        ("alerts", 'ALERTS{alertname="SieveDown", alertstate="firing", severity="page"}'),
        ("target_info", 'sum by (service_name) (target_info{service_name="sieve-demo"})'),
        ("process", "rate(process_cpu_seconds_total[5m]) + process_resident_memory_bytes"),
        ("made label", 'sum by (op) (label_replace(sieve_span_calls_total, "op", "$1", "span_name", "(.*)"))'),
        ("join", "sieve_sink_queue_rows * on (job, instance) group_left (service_name) target_info"),
        ("without", "sum without (otel_scope_name, otel_scope_version) (sieve_sink_queue_rows)"),
        ("recording rule", 'sieve:span_errors:ratio_rate5m{span_name="hello"} > 0.01'),
    ]
    assert catalogue_problems(exprs, extra_names=["sieve:span_errors:ratio_rate5m"]) == []


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sum(rate(sieve_span_calls_total[5m])", "does not parse"),
        ("rate(sieve_span_calls_total)", "does not parse"),
        (
            "rate(sieve_span_call_total[5m])",
            "unknown metric 'sieve_span_call_total' (did you mean 'sieve_span_calls_total'?)",
        ),
        ("sieve_span_duration_seconds", "unknown metric 'sieve_span_duration_seconds'"),
        ("python_gc_objects_collected_total", "unknown metric"),
        ('sieve_span_calls_total{operation="hello"}', "sieve_span_calls_total has no label 'operation'"),
        ('sieve_span_errors_total{status_code="ERROR"}', "has no label 'status_code'"),
        ("sum by (span_nam) (rate(sieve_span_calls_total[5m]))", "label 'span_nam' is on none of"),
        ("sieve_sink_queue_rows / on (pool) sieve_sink_spool_size_bytes", "label 'pool' is on none of"),
        (
            "histogram_quantile(0.95, sum by (span_name) (rate(sieve_span_duration_seconds_bucket[5m])))",
            "drops 'le'",
        ),
        ("histogram_quantile(0.95, sum(rate(sieve_span_duration_seconds_bucket[5m])))", "without 'by (le)'"),
        (
            "histogram_quantile(0.95, sum without (le) (rate(sieve_span_duration_seconds_bucket[5m])))",
            "drops 'le'",
        ),
        ("histogram_quantile(0.95, rate(sieve_span_duration_seconds_sum[5m]))", "not a _bucket series"),
        ('{job="sieve"}', "selector without a metric name"),
        ("my:recording:rule", "unknown metric 'my:recording:rule'"),
    ],
)
def test_problems_are_caught(expr, problem):
    problems = catalogue_problems([("panel X", expr)])
    assert problems, expr
    assert all(p.startswith("panel X: ") for p in problems)
    assert any(problem in p for p in problems), problems


def test_every_problem_is_reported_with_its_place():
    problems = catalogue_problems([("a", "nope_total"), ("b", "up"), ("c", "sum(")])
    assert [p.split(":")[0] for p in problems] == ["a", "c"]


def test_label_of_an_or_matcher_is_checked():
    problems = catalogue_problems([("a", 'sieve_span_calls_total{span_name="a" or spam="b"}')])
    assert problems == ["a: sieve_span_calls_total has no label 'spam' (has " + problems[0].split("(has ", 1)[1]]
