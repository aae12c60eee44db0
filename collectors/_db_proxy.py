"""Connections as handed out by ``StorageTelemetry.acquire_*``: the driver's own, with statement calls observed.

Every statement a repository runs through these passes one hook (``StatementHook``) that knows the statement
text and its parameters: it times the call, names its shape (fingerprint) on the operation and on the driver's
statement span, and asks for a plan when a read was slow. Everything else is delegated untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import psycopg


class StatementHook(Protocol):
    """Observes one statement call: times it and names its shape (``StorageTelemetry`` provides it)."""

    def __call__(
        self, sql: str, args: Sequence[Any], *, driver: str, pyformat: bool
    ) -> AbstractAsyncContextManager[Callable[[int | None], None]]:
        """Wraps one statement call; the yielded callable takes the rows returned (None when unknown)."""
        ...


class AsyncpgConnection:
    """An asyncpg connection whose fetch/fetchrow/fetchval/execute/executemany are observed."""

    def __init__(self, conn: Any, hook: StatementHook) -> None:
        self._conn = conn
        self._hook = hook

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        async with self._hook(query, args, driver="asyncpg", pyformat=False) as returned:
            rows = await self._conn.fetch(query, *args, **kwargs)
            returned(len(rows))
            return rows

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        async with self._hook(query, args, driver="asyncpg", pyformat=False) as returned:
            row = await self._conn.fetchrow(query, *args, **kwargs)
            returned(0 if row is None else 1)
            return row

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        async with self._hook(query, args, driver="asyncpg", pyformat=False) as returned:
            value = await self._conn.fetchval(query, *args, **kwargs)
            returned(None)
            return value

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        async with self._hook(query, args, driver="asyncpg", pyformat=False) as returned:
            status = await self._conn.execute(query, *args, **kwargs)
            returned(None)
            return status

    async def executemany(self, command: str, args: Any, **kwargs: Any) -> Any:
        # Parameters of many rows are not kept for EXPLAIN: executemany is for writes.
        async with self._hook(command, (), driver="asyncpg", pyformat=False) as returned:
            result = await self._conn.executemany(command, args, **kwargs)
            returned(None)
            return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _text(query: Any, conn: Any) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode()
    return str(query.as_string(conn))  # psycopg.sql.Composable


def _params(params: Any) -> Sequence[Any]:
    if params is None:
        return ()
    if isinstance(params, dict):
        return (params,)  # named placeholders: the EXPLAIN passes the mapping through as is
    return tuple(params)


class PsycopgCursor:
    """A psycopg AsyncCursor whose ``execute``/``executemany`` are observed."""

    def __init__(self, cur: psycopg.AsyncCursor[Any], conn: psycopg.AsyncConnection[Any], hook: StatementHook) -> None:
        self._cur = cur
        self._conn = conn
        self._hook = hook

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> PsycopgCursor:
        async with self._hook(_text(query, self._conn), _params(params), driver="psycopg", pyformat=True) as returned:
            await self._cur.execute(query, params, **kwargs)
            returned(self._cur.rowcount if self._cur.rowcount >= 0 else None)
        return self

    async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        async with self._hook(_text(query, self._conn), (), driver="psycopg", pyformat=True) as returned:
            await self._cur.executemany(query, params_seq, **kwargs)
            returned(None)

    async def __aenter__(self) -> PsycopgCursor:
        await self._cur.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._cur.__aexit__(*exc)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._cur.__aiter__()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class PsycopgConnection:
    """A psycopg AsyncConnection whose ``execute`` and cursors' ``execute``/``executemany`` are observed."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], hook: StatementHook) -> None:
        self._conn = conn
        self._hook = hook

    def cursor(self, *args: Any, **kwargs: Any) -> PsycopgCursor:
        return PsycopgCursor(self._conn.cursor(*args, **kwargs), self._conn, self._hook)

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> PsycopgCursor:
        cur = self.cursor()
        return await cur.execute(query, params, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)
