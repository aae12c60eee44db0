"""Sieve's Prometheus rules (dashboards/alerts/sieve.rules.yml): valid, unit-tested, named after real metrics,
documented, and shaped like the multi-window multi-burn-rate table they claim to implement."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import promql_parser as pp
import pytest
import yaml

from dashboards.promql import catalogue_problems
from tests.alerts.rules import Rule, load_rules, load_runbooks, panel_references
from tests.alerts.tools import REPO, RULE_TESTS_DIR, RULES_FILE, require_tool, run_tool

RULES = load_rules()
ALERTS = [r for r in RULES if r.is_alert]
RECORDS = [r for r in RULES if not r.is_alert]
RULE_TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.yml"))
SEVERITIES = {"page", "ticket"}
RUNBOOK_PREFIX = "dashboards/alerts/runbooks.md#"


def _rule_tests() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in RULE_TEST_FILES:
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["tests"])
    return groups


def test_the_rule_file_has_alerts_and_recording_rules() -> None:
    # Guards every other test here against passing vacuously on an empty or mis-parsed file.
    assert len(ALERTS) >= 10
    assert len(RECORDS) >= 9
    assert RULE_TEST_FILES


def test_promtool_check_rules_with_every_lint_fatal() -> None:
    promtool = require_tool("promtool")
    result = run_tool([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(RULES_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    result = run_tool([promtool, "test", "rules", *map(str, RULE_TEST_FILES)], timeout_s=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).count("SUCCESS") == len(RULE_TEST_FILES)


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A wrong expectation must make `promtool test rules` fail, or the suite above proves nothing."""
    promtool = require_tool("promtool")
    original = RULE_TESTS_DIR / "telemetry.yml"
    broken = yaml.safe_load(original.read_text(encoding="utf-8"))
    broken["rule_files"] = [str(RULES_FILE)]
    healthy = broken["tests"][-1]  # up == 1 all along: nothing fires
    assert healthy["alert_rule_test"][0]["exp_alerts"] == []
    healthy["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "page", "job": "sieve"}}]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    result = run_tool([promtool, "test", "rules", str(path)])
    assert result.returncode != 0
    assert "SieveTargetDown" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_not_firing_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in _rule_tests():
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {a.name for a in ALERTS}
    assert names - firing == set(), "alerts without a firing test case"
    assert names - quiet == set(), "alerts without a not-firing test case"
    assert (firing | quiet) - names == set(), "test cases for alerts that do not exist"


def test_every_recording_rule_value_is_checked() -> None:
    checked = " ".join(
        case["expr"] for group in _rule_tests() for case in group.get("promql_expr_test", []) if case.get("exp_samples")
    )
    unchecked = [r.name for r in RECORDS if not re.search(rf"(?<![\w:]){re.escape(r.name)}(?![\w:])", checked)]
    assert unchecked == []


def test_every_metric_and_label_in_the_rules_is_in_the_metric_table() -> None:
    problems = catalogue_problems([(r.name, r.expr) for r in RULES], extra_names=[r.name for r in RECORDS])
    assert problems == []


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a.name)
def test_alert_has_severity_summary_description_and_runbook(alert: Rule) -> None:
    assert alert.labels.get("severity") in SEVERITIES
    for key in ("summary", "description", "runbook_url"):
        assert alert.annotations.get(key, "").strip(), f"{alert.name} lacks annotation {key}"
    assert alert.annotations["runbook_url"] == RUNBOOK_PREFIX + alert.name.lower()


def test_every_alert_has_exactly_one_runbook_section_and_no_orphans() -> None:
    books = load_runbooks()
    anchors = [b.anchor for b in books]
    assert len(anchors) == len(set(anchors)), "two runbook sections share an anchor"
    wanted = {a.annotations["runbook_url"].removeprefix(RUNBOOK_PREFIX) for a in ALERTS}
    assert wanted - set(anchors) == set(), "runbook_url anchors with no section"
    assert set(anchors) - wanted == set(), "runbook sections for no alert"


@pytest.mark.parametrize("book", load_runbooks(), ids=lambda b: b.title)
def test_runbook_section_says_what_it_means_what_to_check_where_to_look_and_the_fix(book: Any) -> None:
    for part in ("**Means.**", "**First checks.**", "**Panel.**", "**Fix.**"):
        assert part in book.body, f"{book.title}: no {part} paragraph"


def test_runbook_panels_exist_in_the_dashboards() -> None:
    panels: dict[str, set[str]] = defaultdict(set)
    for path in (REPO / "dashboards" / "grafana").glob("*.json"):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        stack = list(dashboard.get("panels", []))
        while stack:
            panel = stack.pop()
            panels[dashboard["title"]].add(panel.get("title", ""))
            stack.extend(panel.get("panels", []))
    references = [(book.title, ref) for book in load_runbooks() for ref in panel_references(book.body)]
    assert len(references) >= len(ALERTS), "every runbook names at least one panel"
    missing = [f"{book}: {board} / {panel}" for book, (board, panel) in references if panel not in panels[board]]
    assert missing == []


# -- the SLO shape ---------------------------------------------------------------------------------------------

_BURN_TERM = re.compile(
    r"job:sieve_request_errors:ratio_rate(\w+)\s*>\s*on\s*\(\s*\)\s*group_left\s*\(\s*\)\s*"
    r"\(\s*([\d.]+)\s*\*\s*\(\s*1\s*-\s*sieve:request_availability:objective\s*\)\s*\)"
)


@pytest.mark.parametrize(
    ("alert", "severity", "pairs"),
    [
        ("SieveErrorBudgetFastBurn", "page", {("1h", "5m"): 14.4, ("6h", "30m"): 6.0}),
        ("SieveErrorBudgetSlowBurn", "ticket", {("1d", "2h"): 3.0, ("3d", "6h"): 1.0}),
    ],
)
def test_burn_rate_alerts_follow_the_multiwindow_table(
    alert: str, severity: str, pairs: dict[tuple[str, str], float]
) -> None:
    rule = next(r for r in ALERTS if r.name == alert)
    assert rule.labels["severity"] == severity
    terms = [(window, float(factor)) for window, factor in _BURN_TERM.findall(rule.expr)]
    # Each pair is (long and short) with one factor; pairs are joined with `or`.
    expected = [(w, f) for (long, short), f in pairs.items() for w in (long, short)]
    assert terms == expected
    # The structure: (long > t and short > t) or (long > t and short > t), both windows of a pair compared.
    tree = _unparen(pp.parse(rule.expr))
    assert isinstance(tree, pp.BinaryExpr) and str(tree.op) == "or"
    for pair in (_unparen(tree.lhs), _unparen(tree.rhs)):
        assert isinstance(pair, pp.BinaryExpr) and str(pair.op) == "and"
        assert all(isinstance(side, pp.BinaryExpr) and str(side.op) == ">" for side in (pair.lhs, pair.rhs))


def _unparen(node: Any) -> Any:
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    return node


def test_objectives_are_written_once() -> None:
    text = RULES_FILE.read_text(encoding="utf-8")
    rules_text = text[text.index("groups:") :]  # the header comment may quote them
    assert rules_text.count("0.999") == 1
    assert rules_text.count("0.99)") == 1
    objective = {r.name: r.expr.strip() for r in RECORDS}
    assert objective["sieve:request_availability:objective"] == "vector(0.999)"
    assert objective["sieve:request_latency:objective"] == "vector(0.99)"


def test_every_window_of_the_burn_table_has_its_recording_rule() -> None:
    names = {r.name for r in RECORDS}
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        rule = f"job:sieve_request_errors:ratio_rate{window}"
        assert rule in names
        expr = next(r.expr for r in RECORDS if r.name == rule)
        # The window in the name is the window in the expression, in all three selectors.
        assert re.findall(r"\[(\w+)\]", expr) == [window] * 3


def test_requests_are_server_message_spans_everywhere() -> None:
    """Every request selector names the same span set (SERVER, no handshake, no malformed input)."""
    selector = 'span_kind="SERVER", span_name!~"websocket handshake|invalid"'
    for rule in RECORDS:
        if rule.name.startswith("job:sieve_request"):
            spans = re.findall(r"sieve_span_\w+\{([^}]*)\}", rule.expr)
            assert spans, rule.name
            assert all(s.startswith(selector) for s in spans), rule.name
