"""Where Postgres comes from: a server named by a DSN, or an embedded one from the ``pgserver`` wheel.

The embedded server listens on a Unix socket only (no TCP port to collide with) and keeps its data under
``database.data_dir`` so a second ``sieve demo`` starts in well under a second.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg

from pipeline.config import DatabaseSettings
from pipeline.errors import DatabaseError

log = logging.getLogger(__name__)


@dataclass
class Database:
    """A reachable Postgres. ``close()`` stops the embedded server when this process started it."""

    dsn: str
    embedded: bool
    data_dir: Path | None = None
    _server: Any = field(default=None, repr=False)

    def close(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_database(settings: DatabaseSettings) -> Database:
    """Return a reachable database: the DSN when set, else the embedded server (started if needed)."""
    if settings.dsn:
        check_reachable(settings.dsn, settings.connect_timeout_s)
        return Database(dsn=settings.dsn, embedded=False)
    return start_embedded(settings.data_dir, settings.connect_timeout_s)


def start_embedded(data_dir: Path, connect_timeout_s: float = 5.0) -> Database:
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pgserver falls back to /tmp.
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: a DSN user never pays for it

    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(
            f"cannot create the embedded Postgres' directory {data_dir.parent} (database.data_dir, env "
            f"SIEVE_DATABASE__DATA_DIR): {(exc.strerror or str(exc)).lower()}"
        ) from None
    forget_dead_handles(data_dir)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(data_dir, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises plain exceptions with the server log in the message
        log.debug("embedded Postgres failed to start", exc_info=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(
            f"the embedded Postgres under {data_dir} did not start (database.data_dir): {first[:200]}"
        ) from exc
    dsn = server.get_uri()
    check_reachable(dsn, connect_timeout_s)
    log.info("embedded Postgres ready at %s", dsn)
    return Database(dsn=dsn, embedded=True, data_dir=data_dir, _server=server)


HANDLES_FILE = ".handle_pids.json"  # pgserver's list of processes holding the server; the last one stops it


def forget_dead_handles(data_dir: Path) -> list[int]:
    """Drop the pids of processes that died holding the embedded server (SIGKILL, a crash, an old SIGTERM).

    pgserver stops the server when its last holder exits; a dead holder left in its list keeps the server
    running after every later clean run. Returns the pids forgotten.
    """
    from pgserver.postgres_server import PostgresServer

    path = data_dir / HANDLES_FILE
    with PostgresServer._lock:  # the lock pgserver itself takes around the list
        try:
            pids = [int(p) for p in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            return []
        alive = [p for p in pids if _alive(p)]
        if alive != pids:
            path.write_text(json.dumps(alive))
    return [p for p in pids if p not in alive]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def check_reachable(dsn: str, connect_timeout_s: float) -> None:
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(connect_timeout_s)), autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        # libpq's message spans lines (one per address tried, then hints); the first names the cause.
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        cause = lines[0] if lines else type(exc).__name__
        raise DatabaseError(
            f"cannot reach Postgres at {redact_dsn(dsn)} (database.dsn, env SIEVE_PG_DSN or --dsn): {cause[:300]}"
        ) from exc


def redact_dsn(dsn: str) -> str:
    """Hide a password in a URL-style DSN before it reaches a log or an error message."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparseable DSN>"
    if info.get("password"):
        info["password"] = "***"  # noqa: S105 - the mask that replaces a password, not one
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})


def with_database(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database; always returns a URL (asyncpg accepts only URLs)."""
    info = dict(psycopg.conninfo.conninfo_to_dict(dsn))
    info["dbname"] = dbname
    return to_url(psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None}))


def to_url(dsn: str) -> str:
    """A ``postgresql://`` URL for a DSN in either form; a Unix-socket host goes into the query string."""
    if dsn.startswith(("postgresql://", "postgres://")):
        return dsn
    info = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(dsn).items() if v is not None}
    user = quote(info.pop("user", ""), safe="")
    password = info.pop("password", None)
    host = info.pop("host", "")
    port = info.pop("port", "")
    dbname = quote(info.pop("dbname", ""), safe="")
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    netloc = auth
    if host and not host.startswith("/"):
        netloc += host + (f":{port}" if port else "")
    else:
        if host:
            info["host"] = host
        if port:
            info["port"] = port
    query = f"?{urlencode(info)}" if info else ""
    return f"postgresql://{netloc}/{dbname}{query}"
