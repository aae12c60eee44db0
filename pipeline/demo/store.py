"""The demo's repository: conversations and messages, through asyncpg (reads) and psycopg 3 (writes).

Both drivers are exercised on purpose: real services mix them, and each has its own instrumentation quirks.
Every public method is one repository operation with its own span and duration (``collectors.storage``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import psycopg
import psycopg_pool
from psycopg_pool import AsyncConnectionPool

from collectors.storage import StorageTelemetry
from pipeline.config import ServiceSettings


@dataclass(frozen=True)
class Conversation:
    """A conversation row: its id and the continuation id clients know it by."""

    id: uuid.UUID
    continuation_id: str


@dataclass(frozen=True)
class StoredMessage:
    """A message of a conversation's history, as read back."""

    role: str
    content: str
    created_at: datetime


@dataclass(frozen=True)
class StoredFile:
    """A file attached to a conversation, as listed (metadata only)."""

    id: uuid.UUID
    name: str
    mime_type: str
    size_bytes: int


@dataclass(frozen=True)
class NewMessage:
    """A message to save; its idempotency key makes a retried write a no-op."""

    role: str
    content: str
    metadata: dict[str, Any]
    turn_id: str

    @property
    def idempotency_key(self) -> str:
        # The old key hashed role, content and created_at; a retried write got a new timestamp and doubled.
        return hashlib.sha256(f"{self.turn_id}\x00{self.role}\x00{self.content}".encode()).hexdigest()


class RepositoryUnavailable(Exception):
    """The database could not be reached or did not answer in time: the turn fails fast, the client is told."""


# Failures of the database or the way to it, as opposed to a bug in a statement (which stays what it is).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    # A pooled connection whose server went away is noticed only on use, as "another operation is in progress".
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
)


class ConversationRepository:
    """The demo's repository of conversations, messages and files: reads through asyncpg, writes through psycopg, every
    call a storage operation within a deadline."""

    def __init__(
        self,
        reads: asyncpg.Pool,
        writes: AsyncConnectionPool,
        telemetry: StorageTelemetry,
        timeout_s: float = 5.0,
    ) -> None:
        self._reads = reads
        self._writes = writes
        self._t = telemetry
        self._timeout_s = timeout_s

    @asynccontextmanager
    async def _available(self) -> AsyncIterator[None]:
        """A storage call within its deadline (pool wait included); the database's failures as RepositoryUnavailable."""
        try:
            async with asyncio.timeout(self._timeout_s):
                yield
        except _UNAVAILABLE as exc:
            raise RepositoryUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from exc

    @classmethod
    async def open(cls, dsn: str, telemetry: StorageTelemetry, settings: ServiceSettings) -> ConversationRepository:
        delay_s = settings.db_connect_delay_s

        async def remote_connect(*args: Any, **kwargs: Any) -> Any:
            # The simulated network of a managed Postgres (settings.db_connect_delay_s): paid per new connection.
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            return await asyncpg.connect(*args, **kwargs)

        reads = await asyncpg.create_pool(
            dsn,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            max_inactive_connection_lifetime=settings.pool_idle_lifetime_s,
            connect=telemetry.asyncpg_connect("asyncpg", remote_connect),
            command_timeout=30,
        )
        writes: AsyncConnectionPool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=max(2, settings.pool_max_size // 2),
            timeout=10,
            connection_class=telemetry.psycopg_connection_class("psycopg"),
            kwargs={"autocommit": True, "connect_timeout": 5},
            open=False,
        )
        await writes.open(wait=True, timeout=30)
        telemetry.watch_asyncpg_pool(reads, "asyncpg", idle_lifetime_s=settings.pool_idle_lifetime_s)
        telemetry.watch_psycopg_pool(writes, "psycopg")
        return cls(reads, writes, telemetry, settings.storage_timeout_s)

    async def close(self) -> None:
        """Close both pools; a database that does not answer gets its connections dropped after a few seconds."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._reads.close()
        except TimeoutError:
            self._reads.terminate()
        await self._writes.close(timeout=self._timeout_s)

    async def get_conversation_by_continuation_id(self, continuation_id: str) -> Conversation | None:
        async with (
            self._available(),
            self._t.operation("get_conversation_by_continuation_id", driver="asyncpg") as op,
            self._t.acquire_asyncpg(self._reads, "asyncpg") as conn,
        ):
            row = await conn.fetchrow(
                "SELECT id, continuation_id FROM public.conversations WHERE continuation_id = $1",
                continuation_id,
            )
            op.returned(0 if row is None else 1)
        return Conversation(row["id"], row["continuation_id"]) if row else None

    async def save_conversation(self, continuation_id: str, session_id: str, title: str) -> Conversation:
        async with (
            self._available(),
            self._t.operation("save_conversation", driver="asyncpg") as op,
            self._t.acquire_asyncpg(self._reads, "asyncpg") as conn,
        ):
            row = await conn.fetchrow(
                """INSERT INTO public.conversations (continuation_id, session_id, title)
                   VALUES ($1, $2, $3)
                   ON CONFLICT (continuation_id) DO UPDATE SET updated_at = now()
                   RETURNING id, continuation_id""",
                continuation_id,
                session_id,
                title,
            )
            op.returned(1)
        return Conversation(row["id"], row["continuation_id"])

    async def get_conversation_messages(
        self, conversation_id: uuid.UUID, limit: int, before: datetime | None = None
    ) -> list[StoredMessage]:
        """The newest ``limit`` messages, newest first; ``before`` pages further back."""
        async with (
            self._available(),
            self._t.operation("get_conversation_messages", driver="asyncpg") as op,
            self._t.acquire_asyncpg(self._reads, "asyncpg") as conn,
        ):
            rows = await conn.fetch(
                """SELECT role::text AS role, content, created_at FROM public.messages
                   WHERE conversation_id = $1 AND ($2::timestamptz IS NULL OR created_at < $2)
                   ORDER BY created_at DESC LIMIT $3""",
                conversation_id,
                before,
                limit,
            )
            op.returned(len(rows))
        return [StoredMessage(r["role"], r["content"], r["created_at"]) for r in rows]

    async def save_messages(self, conversation_id: uuid.UUID, messages: list[NewMessage]) -> int:
        """Insert a turn's messages; a retried turn inserts nothing twice. Returns rows inserted."""
        async with (
            self._available(),
            self._t.operation("save_messages", driver="psycopg") as op,
            self._t.acquire_psycopg(self._writes, "psycopg") as conn,
        ):
            inserted = 0
            async with conn.transaction():
                for m in messages:
                    cur = await conn.execute(
                        """INSERT INTO public.messages (conversation_id, role, content, metadata, idempotency_key)
                           VALUES (%s, %s, %s, %s::jsonb, %s)
                           ON CONFLICT (idempotency_key) DO NOTHING""",
                        (conversation_id, m.role, m.content, json.dumps(m.metadata), m.idempotency_key),
                    )
                    inserted += max(cur.rowcount, 0)
            op.returned(inserted)
        return inserted

    # -- the conversation's files, the old daemon's N+1 and its fix ---------------------------------------

    async def conversation_files(self, conversation_id: uuid.UUID, *, batched: bool = False) -> list[StoredFile]:
        """The files attached to a conversation, in their order.

        ``batched=False`` is the old daemon's way, an N+1: one repository call lists the file ids, then one call
        per file reads it (``get_file``, the same statement once per file, in a row under the turn's span).
        ``batched=True`` is the fix: one joined query returns them all.
        """
        if batched:
            async with (
                self._t.operation("get_conversation_files", driver="asyncpg") as op,
                self._t.acquire_asyncpg(self._reads, "asyncpg") as conn,
            ):
                rows = await conn.fetch(
                    """SELECT f.id, f.name, f.mime_type, f.size_bytes
                         FROM public.conversation_files AS cf JOIN public.files AS f ON f.id = cf.file_id
                        WHERE cf.conversation_id = $1
                        ORDER BY cf.position""",
                    conversation_id,
                )
                op.returned(len(rows))
            return [StoredFile(r["id"], r["name"], r["mime_type"], r["size_bytes"]) for r in rows]
        async with (
            self._t.operation("list_conversation_files", driver="asyncpg") as op,
            self._t.acquire_asyncpg(self._reads, "asyncpg") as conn,
        ):
            ids = await conn.fetch(
                "SELECT file_id FROM public.conversation_files WHERE conversation_id = $1 ORDER BY position",
                conversation_id,
            )
            op.returned(len(ids))
        files: list[StoredFile] = []
        for row in ids:
            async with (
                self._t.operation("get_file", driver="asyncpg") as op,
                self._t.acquire_asyncpg(self._reads, "asyncpg") as conn,
            ):
                r = await conn.fetchrow(
                    "SELECT id, name, mime_type, size_bytes FROM public.files WHERE id = $1", row["file_id"]
                )
                op.returned(0 if r is None else 1)
            if r is not None:
                files.append(StoredFile(r["id"], r["name"], r["mime_type"], r["size_bytes"]))
        return files
