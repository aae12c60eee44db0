"""Check PromQL written for Grafana and Prometheus against Sieve's metric table (``pipeline.names``).

Dashboards and alert rules are text that only fails when somebody looks at an empty panel. This module turns
them into a test: every expression must parse, every metric it selects must be one Sieve exports (or one
Prometheus or the exporter adds), and every label it matches on or aggregates by must exist on those metrics.

Public surface (shared with the alert-rule checks, keep it stable):

* ``substitute_grafana_variables(expr)`` replaces Grafana's ``$__rate_interval``, ``${var}``, ``[[var]]``, ...
  by values the parser accepts;
* ``metric_names(expr)`` is the set of metric names an expression selects;
* ``catalogue_problems(exprs, extra_names)`` lists what is wrong with a batch of ``(where, expr)`` pairs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

import promql_parser as pp

from dashboards.catalogue import Catalogue, build_catalogue

# Grafana's global variables with a value of the right shape: a duration inside a range, a number elsewhere.
_DURATIONS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
_NUMBERS = {
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
    "__rate_interval_ms": "300000",
    "__from": "0",
    "__to": "3600000",
}
_DEFAULT_DURATION = "5m"
_DEFAULT_NUMBER = "1"
_DEFAULT_STRING = "sieve_grafana_variable"

# $name, ${name}, ${name:format}; [[name]] and [[name:format]] are rewritten to ${...} first.
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)")
_OLD_VARIABLE = re.compile(r"\[\[(\w+)((?::[^\]]*)?)\]\]")
_OFFSET_VARIABLE = re.compile(r"\b(offset\s+-?)(?:\$\{(\w+)(?::[^}]*)?\}|\$(\w+))")


def substitute_grafana_variables(expr: str) -> str:
    """Replace Grafana template variables with values ``promql_parser`` accepts.

    Inside a range or subquery bracket, or after ``offset``, a variable becomes a duration (``$__rate_interval``
    -> ``5m``); inside a quoted string it becomes a plain word (so ``job=~"$job"`` stays a valid matcher);
    elsewhere it becomes a number (``topk($n, ...)``, ``$__range_s``). The values only need to parse: they are
    never evaluated.
    """
    expr = _OLD_VARIABLE.sub(lambda m: "${" + m.group(1) + m.group(2) + "}", expr)
    expr = _OFFSET_VARIABLE.sub(
        lambda m: m.group(1) + _DURATIONS.get(m.group(2) or m.group(3), _DEFAULT_DURATION), expr
    )
    out: list[str] = []
    for text, context in _segments(expr):
        out.append(_VARIABLE.sub(_replacer(context), text))
    return "".join(out)


def _replacer(context: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if context == "range":
            return _DURATIONS.get(name, _DEFAULT_DURATION)
        if context == "string":
            return _DEFAULT_STRING
        return _NUMBERS.get(name, _DEFAULT_NUMBER)

    return replace


def _segments(expr: str) -> Iterator[tuple[str, str]]:
    """Split ``expr`` into runs tagged ``"string"``, ``"range"`` or ``"code"`` (a small PromQL lexer)."""
    start, i, quote, depth = 0, 0, "", 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            if ch == "\\" and quote != "`":
                i += 2
                continue
            if ch == quote:
                yield expr[start:i], "string"
                start, quote = i, ""
        elif ch in "\"'`":
            yield expr[start:i], "range" if depth else "code"
            start, quote = i, ch
        elif ch == "[":
            yield expr[start:i], "range" if depth else "code"
            start, depth = i, depth + 1
        elif ch == "]" and depth:
            yield expr[start:i], "range"
            start, depth = i, depth - 1
        i += 1
    yield expr[start:], "string" if quote else "range" if depth else "code"


def parse(expr: str) -> pp.Expr:
    """Parse ``expr`` after substituting Grafana variables; raises ``ValueError`` on invalid PromQL."""
    return pp.parse(substitute_grafana_variables(expr))


def _selectors(node: pp.Expr) -> list[pp.VectorSelector]:
    found: list[pp.VectorSelector] = []
    pp.walk(node, lambda n: found.append(n) if isinstance(n, pp.VectorSelector) else None)
    return found


def _selector_name(selector: pp.VectorSelector) -> str | None:
    if selector.name:
        return str(selector.name)
    for matcher in selector.matchers.matchers:
        if matcher.name == "__name__" and matcher.op == pp.MatchOp.Equal:
            return str(matcher.value)
    return None


def vector_selectors(expr: str) -> list[pp.VectorSelector]:
    """Every vector selector of ``expr`` (inside range selectors and subqueries too); raises ``ValueError``."""
    return _selectors(parse(expr))


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (Grafana variables substituted first); raises ``ValueError``."""
    names = {_selector_name(s) for s in _selectors(parse(expr))}
    return {n for n in names if n}


def catalogue_problems(exprs: Iterable[tuple[str, str]], extra_names: Iterable[str] = ()) -> list[str]:
    """Everything wrong with ``(where, expr)`` pairs, one message per problem, prefixed by ``where``.

    A problem is: an expression that does not parse; a metric that Sieve does not export (``pipeline.names``,
    with ``_bucket``/``_sum``/``_count`` for histograms), that Prometheus does not add (``up``, ``ALERTS``,
    ``scrape_*``) and that is not in ``extra_names`` (recording rules); a label matched, aggregated or joined on
    that none of the metrics involved carries; a ``histogram_quantile`` that is not over ``_bucket`` series
    aggregated ``by (le, ...)``. An empty list means all is well.
    """
    catalogue = build_catalogue(extra_names)
    problems: list[str] = []
    for where, expr in exprs:
        try:
            tree = parse(expr)
        except ValueError as exc:
            problems.append(f"{where}: does not parse ({exc}): {expr}")
            continue
        problems.extend(f"{where}: {p}" for p in _tree_problems(tree, catalogue))
    return problems


def _tree_problems(tree: pp.Expr, catalogue: Catalogue) -> list[str]:
    problems: list[str] = []
    for selector in _selectors(tree):
        name = _selector_name(selector)
        if name is None:
            problems.append(f"selector without a metric name: {selector}")
            continue
        if name not in catalogue:
            problems.append(f"unknown metric {name!r}{catalogue.suggestion(name)}")
            continue
        matchers = list(selector.matchers.matchers) + [m for ms in selector.matchers.or_matchers for m in ms]
        problems.extend(
            f"{name} has no label {matcher.name!r} (has {catalogue.describe_labels(name)})"
            for matcher in matchers
            if matcher.name != "__name__" and not catalogue.has_label(name, matcher.name)
        )

    def visit(node: pp.Expr) -> None:
        if isinstance(node, pp.AggregateExpr) and node.modifier is not None:
            problems.extend(_label_problems(node.expr, node.modifier.labels, catalogue, f"{node.op} by/without"))
        elif isinstance(node, pp.BinaryExpr) and node.modifier is not None:
            labels = list(node.modifier.matching.labels) if node.modifier.matching is not None else []
            labels += list(node.modifier.group_labels or [])
            problems.extend(_label_problems(node, labels, catalogue, f"'{node.op}' on/ignoring/group"))
        elif isinstance(node, pp.Call) and node.func.name == "histogram_quantile":
            problems.extend(_quantile_problems(node.args[1]))

    pp.walk(tree, visit)
    return problems


def _label_problems(node: pp.Expr, labels: Iterable[str], catalogue: Catalogue, what: str) -> list[str]:
    """Labels of a ``by``/``on`` clause must exist on at least one metric below it (or be made by a function)."""
    names = {n for n in (_selector_name(s) for s in _selectors(node)) if n is not None and n in catalogue}
    made = _labels_made(node)
    problems = []
    for label in labels:
        if label in made or not names or any(catalogue.has_label(n, label) for n in names):
            continue
        problems.append(f"{what} label {label!r} is on none of {sorted(names)}")
    return problems


def _labels_made(node: pp.Expr) -> set[str]:
    """Labels created inside ``node`` by label_replace / label_join / count_values."""
    made: set[str] = set()

    def visit(n: pp.Expr) -> None:
        if isinstance(n, pp.Call) and n.func.name in ("label_replace", "label_join"):
            made.add(str(n.args[1].val))
        elif isinstance(n, pp.AggregateExpr) and str(n.op) == "count_values" and n.param is not None:
            made.add(str(n.param.val))

    pp.walk(node, visit)
    return made


def _quantile_problems(node: pp.Expr) -> list[str]:
    problems = []
    for selector in _selectors(node):
        name = _selector_name(selector) or ""
        if not name.endswith("_bucket"):
            problems.append(f"histogram_quantile over {name!r}, not a _bucket series")
    aggregations: list[pp.AggregateExpr] = []
    pp.walk(node, lambda n: aggregations.append(n) if isinstance(n, pp.AggregateExpr) else None)
    for agg in aggregations:
        if agg.modifier is None:
            problems.append(f"histogram_quantile over {agg.op}(...) without 'by (le)': the buckets are summed away")
            continue
        labels = set(agg.modifier.labels)
        keeps_le = ("le" in labels) == (agg.modifier.type == pp.AggModifierType.By)
        if not keeps_le:
            problems.append(f"histogram_quantile over {agg.op} that drops 'le': the buckets are summed away")
    return problems
