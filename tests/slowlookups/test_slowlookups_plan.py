"""plan.py: flat key nodes from EXPLAIN JSON, and the scan-then-sort shapes an index would remove."""

from __future__ import annotations

import pytest

from pipeline.slowlookups.plan import (
    flatten,
    is_analyzed,
    key_nodes,
    plan_root,
    sorts_over_scans,
)

from . import plans


def test_plain_explain_flattens_with_estimates_only() -> None:
    nodes = flatten(plans.SEQ_SCAN_SORT)
    assert [(n.node_type, n.depth) for n in nodes] == [("Limit", 0), ("Gather Merge", 1), ("Sort", 2), ("Seq Scan", 3)]
    scan = nodes[-1]
    assert (scan.relation, scan.alias, scan.parallel, scan.filter) == (
        "messages",
        "messages",
        True,
        "(conversation_id = '7'::smallint)",
    )
    assert scan.actual_rows is None and scan.rows == 3024
    assert scan.label == "Parallel Seq Scan on messages"
    assert not is_analyzed(plans.SEQ_SCAN_SORT)


def test_analyzed_plan_carries_actual_rows_and_times() -> None:
    nodes = flatten(plans.INDEX_SCAN_SORT_ANALYZED)
    sort, heap = nodes[1], nodes[2]
    assert sort.sort_method == "top-N heapsort" and sort.actual_total_ms == 5.636
    assert heap.index_name == "messages_conversation_id_idx"  # taken from its Bitmap Index Scan
    assert heap.index_cond == "(conversation_id = '7'::smallint)"  # the Recheck Cond
    assert heap.rows == 5000  # actual, not the 5300 estimate
    assert is_analyzed(plans.INDEX_SCAN_SORT_ANALYZED)


def test_actual_rows_count_every_loop() -> None:
    plan = {"Node Type": "Seq Scan", "Relation Name": "t", "Actual Rows": 2500, "Actual Loops": 2,
            "Rows Removed by Filter": 97500, "Plan Rows": 3000, "Filter": "(a = 1)"}  # fmt: skip
    (node,) = flatten(plan)
    assert (node.actual_rows, node.rows_removed_by_filter) == (5000, 195000)


def test_whole_explain_output_or_plan_node_are_both_accepted() -> None:
    wrapped = [{"Plan": plans.SEQ_SCAN_SORT, "Planning Time": 0.1}]
    assert plan_root(wrapped) is plans.SEQ_SCAN_SORT
    assert flatten(wrapped) == flatten(plans.SEQ_SCAN_SORT)


def test_key_nodes_drop_plumbing() -> None:
    assert [n.node_type for n in key_nodes(plans.SEQ_SCAN_SORT)] == ["Limit", "Sort", "Seq Scan"]
    assert [n.node_type for n in key_nodes(plans.INDEX_SCAN_SORT_ANALYZED)] == ["Limit", "Sort", "Bitmap Heap Scan"]


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (plans.SEQ_SCAN_SORT, [("seq_scan_sort", "messages", 3024.0)]),
        (plans.INDEX_SCAN_SORT_ANALYZED, [("index_scan_sort", "messages", 5000.0)]),
        (plans.JOIN_ALIASED, [("seq_scan_sort", "messages", 4000.0)]),
        (plans.TINY_SEQ_SCAN_SORT, [("seq_scan_sort", "messages", 12.0)]),  # diagnose judges the size
        (plans.INDEX_IN_ORDER, []),
        (plans.UNIQUE_LOOKUP, []),
        (
            {"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 5000.0, "Plan Rows": 1, "Filter": "(k = 1)"},
            [("seq_scan_filter", "t", 1.0)],
        ),
        ({"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 5000.0, "Plan Rows": 1}, []),  # no Filter
    ],
)
def test_sorts_over_scans(plan: dict, expected: list[tuple[str, str, float]]) -> None:
    found = [(p.pattern, p.scan.relation, p.rows_sorted) for p in sorts_over_scans(plan)]
    assert found == expected


def test_sort_over_a_join_is_not_a_single_table_pattern() -> None:
    plan = {
        "Node Type": "Sort", "Sort Key": ["m.created_at"], "Plan Rows": 5000,
        "Plans": [{"Node Type": "Hash Join", "Plans": [
            {"Node Type": "Seq Scan", "Relation Name": "messages", "Alias": "m", "Filter": "(a = 1)",
             "Plan Rows": 5000},
            {"Node Type": "Hash", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "c", "Plan Rows": 10}]},
        ]}],
    }  # fmt: skip
    assert [p.pattern for p in sorts_over_scans(plan)] == ["seq_scan_filter"]


def test_sort_on_an_expression_or_other_relation_is_not_the_pattern() -> None:
    scan = {"Node Type": "Seq Scan", "Relation Name": "messages", "Alias": "m", "Filter": "(a = 1)", "Plan Rows": 9e3}
    for key in (["lower(m.content)"], ["c.created_at"]):
        plan = {"Node Type": "Sort", "Sort Key": key, "Plans": [scan]}
        assert [p.pattern for p in sorts_over_scans(plan)] == ["seq_scan_filter"]


def test_incremental_sort_over_an_index_scan_counts() -> None:
    plan = {
        "Node Type": "Incremental Sort", "Sort Key": ["a", "b DESC"], "Presorted Key": ["a"],
        "Plans": [{"Node Type": "Index Scan", "Relation Name": "t", "Index Name": "t_a_idx",
                   "Index Cond": "(a = ANY ($1))", "Plan Rows": 8000}],
    }  # fmt: skip
    (p,) = sorts_over_scans(plan)
    assert p.pattern == "index_scan_sort" and p.sort is not None and p.sort.presorted_key == ("a",)
