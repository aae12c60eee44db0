"""Canned EXPLAIN (FORMAT JSON) output, trimmed from real Postgres 16 plans of the demo's history read
(``SELECT ... FROM public.messages WHERE conversation_id = $1 ... ORDER BY created_at DESC LIMIT $3``)."""

from __future__ import annotations

from typing import Any

# No index at all, plain EXPLAIN: Limit -> Gather Merge -> Sort -> Parallel Seq Scan with a Filter.
SEQ_SCAN_SORT: dict[str, Any] = {
    "Node Type": "Limit", "Startup Cost": 4305.95, "Total Cost": 4307.1, "Plan Rows": 10,
    "Plans": [{
        "Node Type": "Gather Merge", "Total Cost": 4653.71, "Plan Rows": 3024, "Workers Planned": 1,
        "Plans": [{
            "Node Type": "Sort", "Total Cost": 3313.5, "Plan Rows": 3024, "Sort Key": ["created_at DESC"],
            "Plans": [{
                "Node Type": "Seq Scan", "Parallel Aware": True, "Relation Name": "messages", "Alias": "messages",
                "Total Cost": 3240.59, "Plan Rows": 3024, "Filter": "(conversation_id = '7'::smallint)",
            }],
        }],
    }],
}  # fmt: skip

# Index on conversation_id only, EXPLAIN ANALYZE: the bitmap scan finds 5000 rows, a top-N Sort re-sorts them.
INDEX_SCAN_SORT_ANALYZED: dict[str, Any] = {
    "Node Type": "Limit", "Total Cost": 2012.18, "Plan Rows": 10,
    "Actual Total Time": 5.639, "Actual Rows": 10, "Actual Loops": 1,
    "Plans": [{
        "Node Type": "Sort", "Total Cost": 2025.4, "Plan Rows": 5300, "Sort Key": ["created_at DESC"],
        "Actual Total Time": 5.636, "Actual Rows": 10, "Actual Loops": 1, "Sort Method": "top-N heapsort",
        "Plans": [{
            "Node Type": "Bitmap Heap Scan", "Relation Name": "messages", "Alias": "messages",
            "Total Cost": 1897.62, "Plan Rows": 5300, "Actual Total Time": 5.097, "Actual Rows": 5000,
            "Actual Loops": 1, "Recheck Cond": "(conversation_id = '7'::smallint)",
            "Plans": [{
                "Node Type": "Bitmap Index Scan", "Index Name": "messages_conversation_id_idx",
                "Total Cost": 60.05, "Plan Rows": 5300, "Actual Rows": 5000, "Actual Loops": 1,
                "Index Cond": "(conversation_id = '7'::smallint)",
            }],
        }],
    }],
}  # fmt: skip

# After CREATE INDEX (conversation_id, created_at DESC): the index returns rows in order, no Sort.
INDEX_IN_ORDER: dict[str, Any] = {
    "Node Type": "Limit", "Total Cost": 1.2, "Plan Rows": 10,
    "Plans": [{
        "Node Type": "Index Scan", "Relation Name": "messages", "Alias": "messages",
        "Index Name": "messages_conversation_id_created_at_idx", "Scan Direction": "Forward",
        "Total Cost": 590.1, "Plan Rows": 5300, "Index Cond": "(conversation_id = '7'::smallint)",
    }],
}  # fmt: skip

# A unique-key lookup: the kind of plan that no index can improve (docs/background.md section 3).
UNIQUE_LOOKUP: dict[str, Any] = {
    "Node Type": "Index Scan", "Relation Name": "conversations", "Alias": "conversations",
    "Index Name": "conversations_continuation_id_key", "Total Cost": 8.3, "Plan Rows": 1,
    "Index Cond": "(continuation_id = 'abc'::text)",
}  # fmt: skip

# Two tables, aliased: a join whose outer side is a filtered Seq Scan sorted on the alias's column.
JOIN_ALIASED: dict[str, Any] = {
    "Node Type": "Limit", "Total Cost": 9000.0, "Plan Rows": 20,
    "Plans": [{
        "Node Type": "Nested Loop", "Total Cost": 9100.0, "Plan Rows": 20,
        "Plans": [
            {"Node Type": "Sort", "Total Cost": 8000.0, "Plan Rows": 4000, "Sort Key": ["m.created_at DESC"],
             "Plans": [{"Node Type": "Seq Scan", "Relation Name": "messages", "Alias": "m", "Total Cost": 7000.0,
                        "Plan Rows": 4000, "Filter": "(role = 'user'::message_role)"}]},
            {"Node Type": "Index Scan", "Relation Name": "conversations", "Alias": "c", "Total Cost": 0.4,
             "Index Name": "conversations_pkey", "Plan Rows": 1, "Index Cond": "(id = m.conversation_id)"},
        ],
    }],
}  # fmt: skip

# A small table: seq scan and sort are the right plan.
TINY_SEQ_SCAN_SORT: dict[str, Any] = {
    "Node Type": "Sort", "Total Cost": 3.1, "Plan Rows": 12, "Sort Key": ["created_at"],
    "Plans": [{"Node Type": "Seq Scan", "Relation Name": "messages", "Alias": "messages", "Total Cost": 2.5,
               "Plan Rows": 12, "Filter": "(conversation_id = 3)"}],
}  # fmt: skip
