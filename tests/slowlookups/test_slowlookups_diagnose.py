"""diagnose.py: time shares to findings, and plans to the index that serves the lookup."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pipeline.slowlookups.diagnose import create_index_statement, diagnose, index_name
from pipeline.slowlookups.model import LookupGroup

from . import plans

DEMO = """SELECT role::text AS role, content, created_at FROM public.messages
          WHERE conversation_id = $1 AND ($2::timestamptz IS NULL OR created_at < $2)
          ORDER BY created_at DESC LIMIT $3"""
DEMO_INDEX = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_conversation_id_created_at_idx "
    "ON public.messages (conversation_id, created_at DESC);"
)


def group(pool_wait_ms: float = 0.0, connect_ms: float = 0.0, execute_ms: float = 0.0, **kw: Any) -> LookupGroup:
    base: dict[str, Any] = {
        "fingerprint": "a1b2c3d4e5f60718",
        "operation": "get_conversation_messages",
        "statement": DEMO,
        "calls": 40,
        "p50_ms": 50.0,
        "p95_ms": 90.0,
        "max_ms": 544.0,
        "pool_wait_ms": pool_wait_ms,
        "connect_ms": connect_ms,
        "execute_ms": execute_ms,
        "pool": "asyncpg",
        "pool_max_size": 8,
    }
    base.update(kw)
    return LookupGroup(**base)


@pytest.mark.parametrize(
    ("g", "kinds"),
    [
        (group(pool_wait_ms=720, connect_ms=30, execute_ms=250), ["pool_saturation"]),
        (group(pool_wait_ms=500, execute_ms=500), ["pool_saturation"]),  # exactly half: saturated
        (group(pool_wait_ms=490, execute_ms=510), ["slow_execution"]),
        (group(connect_ms=3500, execute_ms=500, connects=10, idle_connects=9), ["connect_after_idle"]),
        (group(connect_ms=3500, execute_ms=500, connects=10, idle_connects=5), ["connect_setup"]),  # half: not most
        (group(connect_ms=3500, execute_ms=500, connects=10, idle_connects=0), ["connect_setup"]),
        (group(execute_ms=4000, connect_ms=100), ["slow_execution"]),  # no plan
        (group(execute_ms=4000, plan=plans.SEQ_SCAN_SORT), ["missing_index"]),
        (group(execute_ms=4000, plan=plans.INDEX_SCAN_SORT_ANALYZED, plan_analyzed=True), ["missing_index"]),
        (group(execute_ms=4000, plan=plans.INDEX_IN_ORDER), ["slow_execution"]),  # a plan, but no index story
        (group(execute_ms=4000, plan=plans.TINY_SEQ_SCAN_SORT), ["slow_execution"]),  # too small to index
        # A pool queue in front of a scan-and-sort: both, the larger share first.
        (group(pool_wait_ms=600, execute_ms=400, plan=plans.SEQ_SCAN_SORT), ["pool_saturation", "missing_index"]),
        (group(pool_wait_ms=500, execute_ms=500, plan=plans.SEQ_SCAN_SORT), ["pool_saturation", "missing_index"]),
        # No part dominates: nothing to blame.
        (group(pool_wait_ms=340, connect_ms=330, execute_ms=330, connects=3, idle_connects=3), []),
        (group(), []),  # no time at all
    ],
)
def test_finding_kinds_follow_the_time(g: LookupGroup, kinds: list[str]) -> None:
    assert [f.kind for f in diagnose(g)] == kinds


def test_pool_saturation_names_the_pool_share_and_size() -> None:
    (f,) = diagnose(group(pool_wait_ms=720, connect_ms=30, execute_ms=250))
    assert f.summary == "pool 'asyncpg' saturated: 72% of the slow calls' time waited for a connection (max_size 8)"
    assert "max_size" in f.detail and "720 ms of 1000 ms" in f.detail
    assert f.evidence["time_share"] == {"pool_wait": 0.72, "connect": 0.03, "execute": 0.25}
    assert f.create_index is None


def test_pool_saturation_without_a_known_pool() -> None:
    (f,) = diagnose(group(pool_wait_ms=900, execute_ms=100, pool="", pool_max_size=None))
    assert f.summary.startswith("the connection pool saturated: 90%") and "max_size" not in f.summary


def test_connect_after_idle_is_the_0544_story() -> None:
    # A unique-key lookup, median 0.35 s, almost all of it in opening a connection after a quiet gap.
    g = group(
        operation="get_conversation_by_continuation_id",
        statement="SELECT id, continuation_id FROM public.conversations WHERE continuation_id = $1",
        connect_ms=12_600, execute_ms=600, connects=40, idle_connects=36, plan=plans.UNIQUE_LOOKUP,
    )  # fmt: skip
    (f,) = diagnose(g)
    assert f.kind == "connect_after_idle"
    assert "95%" in f.summary and "36 of 40" in f.summary
    assert "closes connections idle" in f.detail and "min_size" in f.detail and "idle lifetime" in f.detail
    assert "315 ms each" in f.detail
    assert f.evidence["idle_connects"] == 36


def test_connect_setup_without_idle() -> None:
    (f,) = diagnose(group(connect_ms=3500, execute_ms=500, connects=10, idle_connects=2))
    assert f.kind == "connect_setup" and "88%" in f.summary
    assert "min_size" in f.detail and "350 ms each" in f.detail


def test_missing_index_from_a_plain_plan() -> None:
    (f,) = diagnose(group(execute_ms=4000, connect_ms=10, plan=plans.SEQ_SCAN_SORT))
    assert f.table == "public.messages"
    assert f.columns == ("conversation_id", "created_at DESC")
    assert f.create_index == DEMO_INDEX
    assert f.summary == "missing index on public.messages (conversation_id, created_at DESC)"
    assert "Parallel Seq Scan on messages reads the whole table" in f.detail
    assert "3,024 estimated rows" in f.detail
    ev = f.evidence
    assert ev["pattern"] == "seq_scan_sort" and ev["plan_analyzed"] is False
    assert ev["scan"]["node_type"] == "Seq Scan" and ev["sort"]["sort_key"] == ["created_at DESC"]


def test_missing_index_from_an_analyzed_plan_with_the_filter_index() -> None:
    (f,) = diagnose(group(execute_ms=4000, plan=plans.INDEX_SCAN_SORT_ANALYZED, plan_analyzed=True))
    assert f.create_index == DEMO_INDEX
    assert "messages_conversation_id_idx" in f.detail and "5,000 rows" in f.detail
    assert f.evidence["pattern"] == "index_scan_sort" and f.evidence["plan_analyzed"] is True


def test_missing_index_on_an_aliased_join_side() -> None:
    stmt = """SELECT m.content FROM public.messages m JOIN public.conversations c ON c.id = m.conversation_id
              WHERE m.role = $1 AND c.title IS NOT NULL AND m.created_at > $2 ORDER BY m.created_at DESC LIMIT 20"""
    (f,) = diagnose(group(statement=stmt, execute_ms=900, plan=plans.JOIN_ALIASED))
    # The range column is the sort column: it is named once.
    assert f.table == "public.messages" and f.columns == ("role", "created_at DESC")


@pytest.mark.parametrize(
    ("statement", "columns"),
    [
        ("SELECT * FROM t WHERE a = $1 AND b IN (1, 2) ORDER BY c DESC, d", ("a", "b", "c DESC", "d")),
        ("SELECT * FROM t WHERE a = $1 AND n >= $2 ORDER BY c", ("a", "c", "n")),  # range last
        ("SELECT * FROM t WHERE a = $1 AND n BETWEEN 1 AND 5", ("a", "n")),
        ("SELECT * FROM t WHERE a = $1 ORDER BY a, c", ("a", "c")),  # a constant column needs no sort position
        ("SELECT * FROM t WHERE a = $1 ORDER BY c DESC NULLS LAST", ("a", "c DESC NULLS LAST")),
        ("SELECT * FROM t WHERE a = $1 ORDER BY c NULLS FIRST", ("a", "c NULLS FIRST")),
        ('SELECT * FROM t WHERE "Kind" = $1 ORDER BY "order"', ('"Kind"', '"order"')),  # quoted identifiers
        ("SELECT * FROM t WHERE a = $1 ORDER BY lower(c)", ("a",)),  # an expression sort: equality only
    ],
)
def test_index_columns(statement: str, columns: tuple[str, ...]) -> None:
    plan = {
        "Node Type": "Sort", "Sort Key": ["x"], "Total Cost": 9000.0, "Plan Rows": 5000,
        "Plans": [{"Node Type": "Seq Scan", "Relation Name": "t", "Alias": "t", "Total Cost": 8000.0,
                   "Plan Rows": 5000, "Filter": "(a = 1)"}],
    }  # fmt: skip
    (f,) = diagnose(group(statement=statement, execute_ms=1000, plan=plan))
    assert f.kind == "missing_index" and f.columns == columns


def test_unqualified_column_of_a_join_is_matched_through_the_plan() -> None:
    stmt = "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE status = $1"
    plan = {
        "Node Type": "Hash Join", "Total Cost": 9000.0,
        "Plans": [
            {"Node Type": "Seq Scan", "Relation Name": "orders", "Alias": "o", "Total Cost": 8000.0,
             "Plan Rows": 50, "Rows Removed by Filter": 99950, "Actual Rows": 50, "Actual Loops": 1,
             "Filter": "(status = 'open'::text)"},
            {"Node Type": "Hash", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "customers", "Alias": "c",
                                             "Plan Rows": 10, "Total Cost": 1.1}]},
        ],
    }  # fmt: skip
    (f,) = diagnose(group(statement=stmt, execute_ms=1000, plan=plan, plan_analyzed=True))
    assert f.table == "orders" and f.columns == ("status",)
    assert f.create_index == "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_status_idx ON orders (status);"
    assert "discarding 99,950 through its Filter" in f.detail


def test_plan_pattern_without_a_readable_statement_still_names_the_table() -> None:
    (f,) = diagnose(group(statement="SELECT broken FROM (", execute_ms=1000, plan=plans.SEQ_SCAN_SORT))
    assert f.kind == "missing_index" and f.table == "messages"
    assert f.columns == () and f.create_index is None


def test_slow_execution_without_a_plan_says_how_to_get_one() -> None:
    (f,) = diagnose(group(execute_ms=4000))
    assert f.kind == "slow_execution" and "no plan captured" in f.summary and "100%" in f.summary
    assert "EXPLAIN (ANALYZE, BUFFERS)" in f.detail and "SIEVE_STORAGE__EXPLAIN__ENABLED" in f.detail


def test_slow_execution_with_a_plan_carries_its_key_nodes() -> None:
    (f,) = diagnose(group(execute_ms=4000, plan=plans.INDEX_IN_ORDER))
    assert [n["node_type"] for n in f.evidence["plan_key_nodes"]] == ["Limit", "Index Scan"]


def test_small_plan_says_the_parameters_may_not_be_representative() -> None:
    (f,) = diagnose(group(execute_ms=4000, plan=plans.TINY_SEQ_SCAN_SORT))
    assert f.kind == "slow_execution" and "only 12 rows of messages" in f.detail and "parameter values" in f.detail


def test_diagnosis_is_pure() -> None:
    g = group(execute_ms=4000, plan=plans.SEQ_SCAN_SORT)
    assert diagnose(g) == diagnose(replace(g))


@pytest.mark.parametrize(
    ("table", "columns", "expected"),
    [
        ("public.messages", ("conversation_id", "created_at"), "messages_conversation_id_created_at_idx"),
        ("t", ("a",), "t_a_idx"),
    ],
)
def test_index_name_follows_postgres_default(table: str, columns: tuple[str, ...], expected: str) -> None:
    assert index_name(table, columns) == expected


def test_long_index_names_fit_63_bytes_and_stay_distinct() -> None:
    cols_a = ("a_rather_long_column_name", "another_rather_long_column_name", "third_one")
    cols_b = ("a_rather_long_column_name", "another_rather_long_column_name", "fourth_one")
    a, b = index_name("public.conversation_messages", cols_a), index_name("public.conversation_messages", cols_b)
    assert len(a.encode()) <= 63 and len(b.encode()) <= 63 and a != b
    assert a.startswith("conversation_messages_a_rather_long") and a.endswith("_idx")
    wide = index_name("tábla", ("ünïcödé_" * 8,))
    assert len(wide.encode()) <= 63 and wide.encode().decode() == wide


def test_create_index_quotes_what_needs_quoting() -> None:
    stmt = create_index_statement("Sales.Order", ('"Customer Id"', "created_at DESC"), ("Customer Id", "created_at"))
    assert stmt == (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "Order_Customer Id_created_at_idx" '
        'ON "Sales"."Order" ("Customer Id", created_at DESC);'
    )


def test_a_slow_write_is_not_told_to_enable_plan_capture() -> None:
    group = LookupGroup(
        fingerprint="00000000000000aa",
        operation="save_messages",
        statement="INSERT INTO public.messages (a) VALUES ($1) ON CONFLICT DO NOTHING",
        calls=5,
        p50_ms=30.0,
        p95_ms=90.0,
        max_ms=120.0,
        pool_wait_ms=1.0,
        connect_ms=0.0,
        execute_ms=300.0,
    )
    (finding,) = diagnose(group)
    assert finding.kind == "slow_execution"
    assert "Writes are not explained" in finding.detail and "EXPLAIN__ENABLED" not in finding.detail
