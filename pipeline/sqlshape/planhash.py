"""A plan's shape as 16 hex digits: what changes when an index is added, not when the table grows.

``plan_shape_hash`` hashes the tree of node types with the relations and indexes they touch, how they join and
in which direction they scan. It ignores costs, row estimates, widths, conditions (their literals depend on the
parameters EXPLAIN ran with), aliases (they come from the statement text) and everything EXPLAIN ANALYZE adds, so
two captures of one plan hash alike whatever the data or the parameters, and a new index that changes the plan
changes the hash. Written by the plan capture (``collectors/_explain.py``) on EXPLAIN spans as
``sieve.db.plan_hash``; the slow-lookups report groups slow calls by fingerprint and this hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["SHAPE_KEYS", "plan_shape", "plan_shape_hash"]

# The fields of a plan node that make its shape. Everything else (Startup/Total Cost, Plan Rows, Plan Width,
# Actual *, Filter, Index Cond, Sort Key, Workers Planned, Alias, Output, Buffers...) is left out.
SHAPE_KEYS = (
    "Node Type",
    "Parent Relationship",
    "Subplan Name",
    "CTE Name",
    "Schema",
    "Relation Name",
    "Function Name",
    "Index Name",
    "Scan Direction",
    "Join Type",
    "Strategy",  # Aggregate: Plain, Sorted, Hashed, Mixed
    "Partial Mode",
    "Parallel Aware",
    "Operation",  # ModifyTable: Insert, Update, Delete
    "Sieve Truncated",  # a plan cut to its top node by the capture's size limit is a shape of its own
)


def _root(plan: Any) -> Any:
    # EXPLAIN (FORMAT JSON) returns [{"Plan": {...}, "Planning Time": ...}]; accept the node itself too.
    if isinstance(plan, list) and plan:
        plan = plan[0]
    if isinstance(plan, dict) and isinstance(plan.get("Plan"), dict):
        top = dict(plan["Plan"])
        if plan.get("Sieve Truncated"):
            top["Sieve Truncated"] = True
        return top
    return plan


def plan_shape(plan: Any) -> Any:
    """The shape tree: each node's ``SHAPE_KEYS`` that are present, with its children in order under ``Plans``."""
    node = _root(plan)
    if not isinstance(node, dict):
        return None
    shape: dict[str, Any] = {k: node[k] for k in SHAPE_KEYS if k in node}
    children = node.get("Plans")
    if isinstance(children, list) and children:
        shape["Plans"] = [plan_shape(child) for child in children]
    return shape


def plan_shape_hash(plan: Any) -> str | None:
    """16 hex digits identifying the plan's shape, or None when ``plan`` is not an EXPLAIN (FORMAT JSON) plan."""
    shape = plan_shape(plan)
    if not shape:
        return None
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
