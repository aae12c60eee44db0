"""What a slow lookup's statement filters and sorts on, read with Postgres' own parser (pglast).

``select_shape(sql)`` answers, for one plain SELECT, which tables it reads (schema-qualified when written so,
aliases resolved), which columns each table compares by equality or by range in the top-level AND of the
WHERE clause, and what it orders by. That is what an index for the lookup needs: equality columns first, then
the sort, then a range. Predicates under OR or NOT are ignored on purpose: ``($2 IS NULL OR created_at < $2)``
may or may not restrict anything, so an index must not be designed around it.

``is_read_only_select(sql)`` is the gate before any EXPLAIN: one SELECT with no locking clause, no INTO and no
data-modifying statement anywhere in it (``WITH d AS (DELETE ... RETURNING ...) SELECT ...`` is a write).
Functions with side effects (``pg_advisory_lock``) cannot be seen from the text; plain EXPLAIN does not run them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pglast import ast
from pglast.enums.parsenodes import A_Expr_Kind, SetOperation, SortByDir, SortByNulls
from pglast.enums.primnodes import BoolExprType
from pglast.visitors import Visitor

from pipeline.sqlshape.parse import parse_one as _parse_one

_RANGE_OPERATORS = frozenset({"<", "<=", ">", ">="})
# Statements that write, and FOR UPDATE/SHARE (a LockingClause), wherever they sit in the tree.
_WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt, ast.LockingClause)


@dataclass(frozen=True)
class SortColumn:
    """One ORDER BY item that is a plain column."""

    table: str | None  # the table it belongs to (as in ``TableUse.name``); None when it cannot be told
    column: str
    descending: bool = False
    nulls_first: bool | None = None  # None: as written, the direction's default (DESC: first, ASC: last)

    @property
    def explicit_nulls(self) -> bool:
        """True when NULLS FIRST/LAST differs from what the direction implies (an index key must say it)."""
        return self.nulls_first is not None and self.nulls_first != self.descending


@dataclass(frozen=True)
class TableUse:
    """A table of the FROM clause and the WHERE predicates that name one of its columns."""

    name: str  # "public.messages" when written so, else "messages"
    alias: str | None
    equality: tuple[str, ...] = ()  # col = value, col IN (...), col = ANY(...)
    ranges: tuple[str, ...] = ()  # <, <=, >, >=, BETWEEN

    @property
    def relname(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def schema(self) -> str | None:
        return self.name.rsplit(".", 1)[0] if "." in self.name else None


@dataclass(frozen=True)
class SelectShape:
    """The tables, filters and sort of a read-only SELECT, as slow-lookup diagnosis needs them."""

    tables: tuple[TableUse, ...]
    order_by: tuple[SortColumn, ...]  # only when every ORDER BY item is a column; else ()
    unresolved_equality: tuple[str, ...] = ()  # unqualified columns of a multi-table FROM
    unresolved_ranges: tuple[str, ...] = ()
    has_limit: bool = False

    def table(self, relname: str, alias: str | None = None, schema: str | None = None) -> TableUse | None:
        """The table a plan node names (relation name, plus alias and schema when the plan has them)."""
        matches = [t for t in self.tables if t.relname == relname and (schema is None or t.schema in (None, schema))]
        if alias is not None and len(matches) > 1:
            matches = [t for t in matches if (t.alias or t.relname) == alias] or matches
        return matches[0] if matches else None


class _Writes(Visitor):
    def __init__(self) -> None:
        self.found = False

    def visit(self, _ancestors: object, node: object) -> None:
        into = isinstance(node, ast.SelectStmt) and node.intoClause is not None  # SELECT INTO creates a table
        if into or isinstance(node, _WRITES):
            self.found = True


@lru_cache(maxsize=1024)
def is_read_only_select(sql: str) -> bool:
    """True for one SELECT (UNIONs included) with no locking, no INTO and no data-modifying CTE anywhere."""
    stmt = _parse_one(sql)
    if not isinstance(stmt, ast.SelectStmt):
        return False
    writes = _Writes()
    writes(stmt)
    return not writes.found


@lru_cache(maxsize=1024)
def select_shape(sql: str) -> SelectShape | None:
    """Tables, equality/range columns and ORDER BY of one plain SELECT; None for anything else.

    "Plain" means read-only (``is_read_only_select``) and not a set operation: a UNION has no single WHERE.
    """
    if not is_read_only_select(sql):
        return None
    stmt = _parse_one(sql)
    assert isinstance(stmt, ast.SelectStmt)
    if stmt.op != SetOperation.SETOP_NONE:
        return None
    ctes = {cte.ctename for cte in (stmt.withClause.ctes if stmt.withClause else ()) or ()}
    tables: list[tuple[str, str | None]] = []
    for item in stmt.fromClause or ():
        _collect_tables(item, ctes, tables)
    scope = _Scope(tables)
    equality: dict[str | None, list[str]] = {}
    ranges: dict[str | None, list[str]] = {}
    for pred in _conjuncts(stmt.whereClause):
        found = _equality_column(pred)
        target = equality
        if found is None:
            found, target = _range_column(pred), ranges
        if found is not None:
            table, column = scope.resolve(found)
            bucket = target.setdefault(table, [])
            if column not in bucket:
                bucket.append(column)
    uses = tuple(
        TableUse(name, alias, tuple(equality.get(name, ())), tuple(ranges.get(name, ()))) for name, alias in tables
    )
    return SelectShape(
        tables=uses,
        order_by=_order_by(stmt, scope),
        unresolved_equality=tuple(equality.get(None, ())),
        unresolved_ranges=tuple(ranges.get(None, ())),
        has_limit=stmt.limitCount is not None,
    )


def _collect_tables(item: ast.Node, ctes: set[str], out: list[tuple[str, str | None]]) -> None:
    if isinstance(item, ast.RangeVar):
        if item.schemaname is None and item.relname in ctes:
            return  # a CTE, not a table
        name = f"{item.schemaname}.{item.relname}" if item.schemaname else item.relname
        out.append((name, item.alias.aliasname if item.alias else None))
    elif isinstance(item, ast.JoinExpr):
        _collect_tables(item.larg, ctes, out)
        _collect_tables(item.rarg, ctes, out)
    # Subqueries and function calls in FROM have no table of their own to index here.


class _Scope:
    """Resolves a column reference to (table name, column) within one FROM clause."""

    def __init__(self, tables: list[tuple[str, str | None]]) -> None:
        self.tables = tables
        self.by_ref: dict[str, str] = {}
        for name, alias in tables:
            if alias:
                self.by_ref[alias] = name  # an alias hides the table's own name, as in Postgres
            else:
                self.by_ref[name] = name
                self.by_ref.setdefault(name.rsplit(".", 1)[-1], name)

    def resolve(self, fields: tuple[str, ...]) -> tuple[str | None, str]:
        column = fields[-1]
        if len(fields) == 1:
            return (self.tables[0][0] if len(self.tables) == 1 else None), column
        return self.by_ref.get(".".join(fields[:-1])), column


def _conjuncts(where: ast.Node | None) -> list[ast.Node]:
    """The top-level AND's operands (nested ANDs flattened); OR and NOT stay whole and are skipped later."""
    if where is None:
        return []
    if isinstance(where, ast.BoolExpr) and where.boolop == BoolExprType.AND_EXPR:
        return [c for arg in where.args for c in _conjuncts(arg)]
    return [where]


def _column(node: ast.Node | None) -> tuple[str, ...] | None:
    while isinstance(node, ast.TypeCast):  # created_at::date is not the column, but col::text = $1 names col
        node = node.arg
    if isinstance(node, ast.ColumnRef) and all(isinstance(f, ast.String) for f in node.fields):
        return tuple(f.sval for f in node.fields)
    return None


def _is_value(node: ast.Node | None) -> bool:
    """A parameter, a literal, or a cast/array/list of them: something fixed for the whole scan."""
    if isinstance(node, ast.ParamRef | ast.A_Const):
        return True
    if isinstance(node, ast.TypeCast):
        return _is_value(node.arg)
    if isinstance(node, ast.A_ArrayExpr):
        return all(_is_value(e) for e in node.elements or ())
    if isinstance(node, tuple | list):
        return all(_is_value(e) for e in node)
    return False


def _operator(expr: ast.A_Expr) -> str:
    return expr.name[-1].sval if expr.name else ""


def _equality_column(pred: ast.Node) -> tuple[str, ...] | None:
    if not isinstance(pred, ast.A_Expr) or _operator(pred) != "=":
        return None
    if pred.kind in (A_Expr_Kind.AEXPR_OP, A_Expr_Kind.AEXPR_OP_ANY, A_Expr_Kind.AEXPR_IN):
        col, value = _column(pred.lexpr), pred.rexpr
        if col is None and pred.kind == A_Expr_Kind.AEXPR_OP:  # $1 = col
            col, value = _column(pred.rexpr), pred.lexpr
        return col if col is not None and _is_value(value) else None
    return None


def _range_column(pred: ast.Node) -> tuple[str, ...] | None:
    if not isinstance(pred, ast.A_Expr):
        return None
    if pred.kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_BETWEEN_SYM):
        col = _column(pred.lexpr)
        return col if col is not None and _is_value(pred.rexpr) else None
    if pred.kind == A_Expr_Kind.AEXPR_OP and _operator(pred) in _RANGE_OPERATORS:
        for col_side, value_side in ((pred.lexpr, pred.rexpr), (pred.rexpr, pred.lexpr)):
            col = _column(col_side)
            if col is not None and _is_value(value_side):
                return col
    return None


def _order_by(stmt: ast.SelectStmt, scope: _Scope) -> tuple[SortColumn, ...]:
    targets = [t for t in stmt.targetList or () if isinstance(t, ast.ResTarget)]
    out: list[SortColumn] = []
    for item in stmt.sortClause or ():
        if item.sortby_dir == SortByDir.SORTBY_USING:
            return ()  # a custom operator: no b-tree order to offer
        node = item.node
        if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):  # ORDER BY 2
            position = (node.val.ival or 0) - 1
            node = targets[position].val if 0 <= position < len(targets) else None
        fields = _column(node)
        if fields is not None and len(fields) == 1:  # ORDER BY an output name: the expression it names
            named = next((t.val for t in targets if t.name == fields[0]), None)
            if named is not None:
                fields = _column(named)
        if fields is None:
            return ()  # an expression: a plain column index cannot serve this ORDER BY
        table, column = scope.resolve(fields)
        nulls = {SortByNulls.SORTBY_NULLS_FIRST: True, SortByNulls.SORTBY_NULLS_LAST: False}.get(item.sortby_nulls)
        out.append(SortColumn(table, column, item.sortby_dir == SortByDir.SORTBY_DESC, nulls))
    return tuple(out)
