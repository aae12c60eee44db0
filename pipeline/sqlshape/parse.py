"""Postgres' own parser (pglast, libpg_query), called once per distinct statement text.

Parsing costs tens of microseconds; an application runs a few hundred distinct statement texts (values travel
as parameters), so every reader of SQL structure in Sieve (fingerprints, read-only checks, the columns a slow
lookup filters on) goes through this one cache.
"""

from __future__ import annotations

from functools import lru_cache

from pglast import ast, parse_sql
from pglast.parser import ParseError

CACHE_SIZE = 4096


@lru_cache(maxsize=CACHE_SIZE)
def parse(sql: str) -> tuple[ast.RawStmt, ...] | None:
    """The statements of ``sql`` as Postgres parses them; None when its grammar rejects the text."""
    try:
        return tuple(parse_sql(sql))
    except ParseError:
        return None


def parse_one(sql: str) -> ast.Node | None:
    """The one statement of ``sql``; None for several statements or text that does not parse."""
    stmts = parse(sql)
    return stmts[0].stmt if stmts is not None and len(stmts) == 1 else None
