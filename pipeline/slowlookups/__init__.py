"""Slow lookups: slow storage operations read back from the Postgres sink, grouped by statement fingerprint,
with a diagnosis that names the fix (``sieve slow-lookups``, the demo report, the storage dashboard)."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from pipeline.errors import DatabaseError
from pipeline.slowlookups.diagnose import diagnose_all
from pipeline.slowlookups.model import Report
from pipeline.slowlookups.query import fetch_groups


def collect_report(dsn: str, since: timedelta, *, min_duration_ms: float = 0.0, limit: int = 20) -> Report:
    """Read the window from the sink and diagnose each statement group."""
    try:
        start, end, groups = fetch_groups(dsn, since, min_duration_ms=min_duration_ms, limit=limit)
    except psycopg.errors.UndefinedFunction:
        raise DatabaseError(
            "monitoring.get_slow_lookup_groups is missing: this database has not been migrated (run `sieve migrate`)"
        ) from None
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot read the sink: {str(exc).strip().splitlines()[0]}") from None
    return diagnose_all(groups, start, end)
