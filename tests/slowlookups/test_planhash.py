"""The plan shape hash: the same plan hashes alike whatever its costs, rows and parameters; an index that changes
the plan changes the hash."""

from __future__ import annotations

import copy
import json
from typing import Any

from pipeline.sqlshape import plan_shape_hash
from pipeline.sqlshape.planhash import plan_shape
from tests.slowlookups.plans import INDEX_IN_ORDER, INDEX_SCAN_SORT_ANALYZED, SEQ_SCAN_SORT, UNIQUE_LOOKUP


def _explain(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Plan": node, "Planning Time": 0.1}]


def _walk(node: dict[str, Any]):  # type: ignore[no-untyped-def]
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


def test_costs_rows_conditions_and_analyze_fields_do_not_change_the_hash() -> None:
    other = copy.deepcopy(SEQ_SCAN_SORT)
    for node in _walk(other):
        for key in ("Total Cost", "Startup Cost", "Plan Rows"):
            if key in node:
                node[key] = node[key] * 7 + 1
        if "Filter" in node:
            node["Filter"] = "(conversation_id = $1)"
        node["Actual Rows"], node["Actual Loops"] = 12, 1
    assert plan_shape_hash(_explain(other)) == plan_shape_hash(_explain(SEQ_SCAN_SORT))
    # The EXPLAIN document, its Plan node, and its JSON text round trip all hash alike.
    assert plan_shape_hash(SEQ_SCAN_SORT) == plan_shape_hash(json.loads(json.dumps(_explain(SEQ_SCAN_SORT))))


def test_an_index_that_changes_the_plan_changes_the_hash() -> None:
    hashes = {plan_shape_hash(_explain(p)) for p in (SEQ_SCAN_SORT, INDEX_SCAN_SORT_ANALYZED, INDEX_IN_ORDER)}
    assert len(hashes) == 3
    assert all(h and len(h) == 16 and int(h, 16) >= 0 for h in hashes)
    renamed = copy.deepcopy(INDEX_IN_ORDER)
    renamed["Plans"][0]["Index Name"] = "another_idx"
    assert plan_shape_hash(renamed) != plan_shape_hash(INDEX_IN_ORDER)


def test_a_truncated_plan_is_a_shape_of_its_own_and_junk_has_no_hash() -> None:
    top = {k: v for k, v in UNIQUE_LOOKUP.items() if k != "Plans"}
    assert plan_shape_hash([{"Plan": top, "Sieve Truncated": True}]) != plan_shape_hash([{"Plan": top}])
    assert plan_shape({"Node Type": "Limit", "Total Cost": 1, "Plans": [{"Node Type": "Result"}]}) == {
        "Node Type": "Limit",
        "Plans": [{"Node Type": "Result"}],
    }
    assert plan_shape_hash(None) is None
    assert plan_shape_hash([]) is None
    assert plan_shape_hash("Seq Scan") is None
