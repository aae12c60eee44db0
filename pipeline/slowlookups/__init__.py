"""Slow lookups: slow storage operations read back from the Postgres sink, grouped by statement fingerprint and
plan, with a diagnosis that names the fix, the plan changes of the window and the N+1 loops (``sieve
slow-lookups``, the demo report, the storage dashboard)."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from pipeline.errors import DatabaseError
from pipeline.slowlookups.diagnose import diagnose_all
from pipeline.slowlookups.model import Report
from pipeline.slowlookups.query import NPlusOneOptions, fetch_window

__all__ = ["NPlusOneOptions", "collect_report"]


def collect_report(
    dsn: str,
    since: timedelta,
    *,
    min_duration_ms: float = 0.0,
    limit: int = 20,
    until: datetime | None = None,
    n_plus_one: NPlusOneOptions | None = None,
) -> Report:
    """Read the window from the sink and diagnose each statement group."""
    try:
        window = fetch_window(
            dsn, since, until=until, min_duration_ms=min_duration_ms, limit=limit, n_plus_one=n_plus_one
        )
    except psycopg.errors.UndefinedFunction:
        raise DatabaseError(
            "the slow-lookup functions are missing: this database has not been migrated (run `sieve migrate`)"
        ) from None
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot read the sink: {str(exc).strip().splitlines()[0]}") from None
    report = diagnose_all(window.groups, window.since, window.until)
    return Report(
        report.since,
        report.until,
        report.groups,
        plan_changes=tuple(window.plan_changes),
        n_plus_one=tuple(window.n_plus_one),
        n_plus_one_source=window.n_plus_one_source,
        n_plus_one_since=window.n_plus_one_since,
    )
