"""statement.py: what a SELECT filters and sorts on, and which statements are never EXPLAINed."""

from __future__ import annotations

import pytest

from pipeline.sqlshape import SortColumn, is_read_only_select, select_shape

DEMO = """SELECT role::text AS role, content, created_at FROM public.messages
          WHERE conversation_id = $1 AND ($2::timestamptz IS NULL OR created_at < $2)
          ORDER BY created_at DESC LIMIT $3"""


@pytest.mark.parametrize(
    ("sql", "read_only"),
    [
        (DEMO, True),
        ("SELECT 1", True),
        ("SELECT a FROM t UNION ALL SELECT b FROM u", True),
        ("WITH r AS (SELECT * FROM t) SELECT * FROM r", True),
        ("SELECT * FROM t WHERE id IN (SELECT tid FROM u)", True),
        ("INSERT INTO t (a) VALUES ($1)", False),
        ("UPDATE t SET a = 1 WHERE id = $1", False),
        ("DELETE FROM t WHERE id = $1", False),
        ("MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", False),
        ("SELECT * FROM t WHERE id = $1 FOR UPDATE", False),
        ("SELECT * FROM t FOR SHARE SKIP LOCKED", False),
        ("SELECT * FROM (SELECT * FROM t FOR UPDATE) s", False),  # locking hidden in a subquery
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", False),  # data-modifying CTE
        ("WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i", False),
        ("SELECT * INTO new_t FROM t", False),
        ("SELECT 1; DELETE FROM t", False),  # two statements
        ("EXPLAIN SELECT 1", False),
        ("not sql at all", False),
        ("", False),
    ],
)
def test_is_read_only_select(sql: str, read_only: bool) -> None:
    assert is_read_only_select(sql) is read_only


def test_writes_have_no_shape() -> None:
    assert select_shape("SELECT * FROM t FOR UPDATE") is None
    assert select_shape("UPDATE t SET a = 1") is None
    assert select_shape("SELECT a FROM t UNION SELECT a FROM u") is None  # no single WHERE to index for


def test_demo_history_read_ignores_the_or_branch() -> None:
    shape = select_shape(DEMO)
    assert shape is not None
    (t,) = shape.tables
    assert (t.name, t.alias, t.equality, t.ranges) == ("public.messages", None, ("conversation_id",), ())
    assert shape.order_by == (SortColumn("public.messages", "created_at", descending=True),)
    assert shape.has_limit


@pytest.mark.parametrize(
    ("where", "equality", "ranges"),
    [
        ("a = $1", ("a",), ()),
        ("$1 = a", ("a",), ()),
        ("a = 'x'", ("a",), ()),
        ("a = $1::uuid", ("a",), ()),
        ("a::text = $1", ("a",), ()),
        ("a IN (1, 2, 3)", ("a",), ()),
        ("a = ANY($1)", ("a",), ()),
        ("a = ANY(ARRAY[1, 2])", ("a",), ()),
        ("a NOT IN (1, 2)", (), ()),
        ("a <> $1", (), ()),
        ("a = b", (), ()),  # a column compared with a column: a join, not a lookup key
        ("a = $1 AND b = $2 AND (c = $3 AND d = $4)", ("a", "b", "c", "d"), ()),  # nested ANDs flatten
        ("a = $1 OR b = $2", (), ()),
        ("a = $1 AND (b = $2 OR c = $3)", ("a",), ()),
        ("NOT (a = $1)", (), ()),
        ("a < $1", (), ("a",)),
        ("$1 >= a", (), ("a",)),
        ("a BETWEEN $1 AND $2", (), ("a",)),
        ("a NOT BETWEEN $1 AND $2", (), ()),
        ("a = $1 AND created_at > now() - interval '1 day'", ("a",), ()),  # now() - ...: not a fixed value
        ("a = $1 AND a = $2", ("a",), ()),  # named once
    ],
)
def test_where_predicates(where: str, equality: tuple[str, ...], ranges: tuple[str, ...]) -> None:
    shape = select_shape(f"SELECT * FROM t WHERE {where}")
    assert shape is not None
    assert (shape.tables[0].equality, shape.tables[0].ranges) == (equality, ranges)


def test_aliases_and_schemas_resolve_columns_to_their_table() -> None:
    shape = select_shape(
        """SELECT m.content FROM public.messages AS m JOIN public.conversations c ON c.id = m.conversation_id
           WHERE c.continuation_id = $1 AND m.role = 'user' AND m.created_at >= $2 AND public.c.x = 1
           ORDER BY m.created_at DESC NULLS LAST, m.id"""
    )
    assert shape is not None
    m, c = shape.tables
    assert (m.name, m.alias, m.equality, m.ranges) == ("public.messages", "m", ("role",), ("created_at",))
    assert (c.name, c.alias, c.equality) == ("public.conversations", "c", ("continuation_id",))
    assert shape.order_by == (
        SortColumn("public.messages", "created_at", descending=True, nulls_first=False),
        SortColumn("public.messages", "id"),
    )
    assert shape.order_by[0].explicit_nulls  # DESC defaults to NULLS FIRST: an index must say LAST
    assert shape.table("messages", "m") == m
    assert shape.table("conversations", "c", "public") == c


def test_unqualified_columns_of_a_join_stay_unresolved() -> None:
    shape = select_shape("SELECT * FROM a JOIN b ON a.id = b.a_id WHERE kind = $1 AND n > 3 ORDER BY a.x")
    assert shape is not None
    assert shape.unresolved_equality == ("kind",) and shape.unresolved_ranges == ("n",)
    assert all(not t.equality for t in shape.tables)
    assert shape.order_by == (SortColumn("a", "x"),)


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("created_at", (SortColumn("t", "created_at"),)),
        ("created_at ASC NULLS FIRST", (SortColumn("t", "created_at", nulls_first=True),)),
        ("2 DESC", (SortColumn("t", "b", descending=True),)),  # by position
        ("bee", (SortColumn("t", "b"),)),  # by output name
        ("lower(a)", ()),  # an expression: no plain column index for it
        ("a, lower(b)", ()),
        ("a USING <", ()),
    ],
)
def test_order_by(order_by: str, expected: tuple[SortColumn, ...]) -> None:
    shape = select_shape(f"SELECT a, b AS bee FROM t ORDER BY {order_by}")
    assert shape is not None
    assert shape.order_by == expected


def test_ctes_are_not_tables() -> None:
    shape = select_shape("WITH recent AS (SELECT * FROM t) SELECT * FROM recent r JOIN u ON u.id = r.id WHERE u.k = 1")
    assert shape is not None
    assert [t.name for t in shape.tables] == ["u"]
    assert shape.tables[0].equality == ("k",)
