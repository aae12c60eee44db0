"""Statement identity for storage spans: fingerprint, normalised text, a short summary, and "is it a plain read?".

Built on pglast (libpg_query, Postgres' own parser): its fingerprint is the one pg_query-based tools use, stable
across literal values, parameter numbers, comments, whitespace, letter case and IN-list lengths, and different
for different statement shapes. Parsing costs tens of microseconds, so results are cached by statement text:
applications run a few hundred distinct texts with parameters, so the hot path is a dict lookup.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from pglast import ast
from pglast.parser import ParseError, fingerprint, scan
from pglast.visitors import Visitor

from pipeline.sqlshape.parse import parse
from pipeline.sqlshape.select import is_read_only_select

# psycopg's client-side placeholders (%s, %b, %t and the %(name)s forms); %% is a literal percent sign.
_PYFORMAT = re.compile(r"%%|%\((?P<name>[^)]+)\)[sbt]|%[sbt]")
# Tokens that carry a literal value: they become $n in the normalised text.
_LITERALS = frozenset({"SCONST", "ICONST", "FCONST", "BCONST", "XCONST", "USCONST"})
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_PARAM = re.compile(r"\$(\d+)")


@dataclass(frozen=True)
class StatementInfo:
    """What Sieve knows of a statement's text: its fingerprint, normalised text, summary and whether it may be
    explained."""

    fingerprint: str  # 16 hex digits
    normalised: str  # literals replaced by $n, comments dropped, whitespace collapsed
    summary: str  # "SELECT public.messages": operation and tables, low cardinality (semconv db.query.summary)
    read_only: bool  # one plain SELECT without locking or data-modifying CTEs: safe to EXPLAIN
    parsed: bool  # False when Postgres' grammar rejected it (the fingerprint is then a hash of the text)


def to_dollar_params(sql: str) -> str:
    """psycopg's ``%s`` / ``%(name)s`` placeholders as ``$n``, so Postgres' parser reads the statement."""
    names: dict[str, int] = {}
    counter = 0

    def replace(m: re.Match[str]) -> str:
        nonlocal counter
        if m.group(0) == "%%":
            return "%"
        name = m.group("name")
        if name is not None:
            if name not in names:
                counter += 1
                names[name] = counter
            return f"${names[name]}"
        counter += 1
        return f"${counter}"

    return _PYFORMAT.sub(replace, sql) if "%" in sql else sql


class _Tables(Visitor):
    def __init__(self) -> None:
        self.names: list[str] = []

    def visit_RangeVar(self, _ancestors: object, node: ast.RangeVar) -> None:
        name = f"{node.schemaname}.{node.relname}" if node.schemaname else node.relname
        if name not in self.names:
            self.names.append(name)


def strip_literals(sql: str) -> str:
    """SQL text with every literal replaced by ``$n``: for normalised statements and for the conditions of a
    captured plan, which EXPLAIN prints with the parameter values it was given."""
    return _normalise(sql)


def _normalise(sql: str) -> str:
    try:
        tokens = scan(sql)
    except ParseError:
        return " ".join(sql.split())
    highest = max((int(n) for n in _PARAM.findall(sql)), default=0)
    out: list[str] = []
    end = 0
    for tok in tokens:
        if sql[end : tok.start].strip() == "" and end < tok.start:
            out.append(" ")  # any run of whitespace between tokens becomes one space
        end = tok.end + 1
        if tok.name in _COMMENTS:
            continue
        if tok.name in _LITERALS:
            highest += 1
            out.append(f"${highest}")
        else:
            out.append(sql[tok.start : end])
    return " ".join("".join(out).split())


def _verb(stmt: object, normalised: str) -> str:
    name = type(stmt).__name__
    if name.endswith("Stmt") and name != "RawStmt":
        return {"Select": "SELECT", "Insert": "INSERT", "Update": "UPDATE", "Delete": "DELETE", "Merge": "MERGE"}.get(
            name[:-4], name[:-4].upper()
        )
    return normalised.split(" ", 1)[0].upper() if normalised else ""


@lru_cache(maxsize=4096)
def statement_info(sql: str, *, pyformat: bool = False) -> StatementInfo:
    """Identity of one statement text (``pyformat=True`` for psycopg's ``%s`` placeholders)."""
    text = to_dollar_params(sql) if pyformat else sql
    normalised = _normalise(text)
    stmts = parse(text)
    try:
        if stmts is None:
            raise ParseError("not SQL Postgres' grammar accepts", 0)
        fp = fingerprint(text)
    except ParseError:
        digest = hashlib.blake2b(normalised.encode(), digest_size=8).hexdigest()
        verb = normalised.split(" ", 1)[0].upper() if normalised else ""
        return StatementInfo(digest, normalised, verb, read_only=False, parsed=False)
    stmt = stmts[0].stmt if len(stmts) == 1 else None
    tables = _Tables()
    tables(stmts)
    summary = " ".join([_verb(stmt, normalised), *tables.names[:3]])
    return StatementInfo(fp, normalised, summary, read_only=is_read_only_select(text), parsed=True)
