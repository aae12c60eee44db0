"""What `sieve slow-lookups` works on: slow storage spans grouped by statement fingerprint, and what it concludes.

A ``LookupGroup`` is one row of ``monitoring.get_slow_lookup_groups`` (sql/functions/50_slow_lookups.sql): the slow
repository operations of a window that ran the same statement shape. ``diagnose`` turns one into ``Finding``s.
Both are plain values so the diagnosis is pure and tested without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class LookupGroup:
    fingerprint: str  # pg_query fingerprint of the statement (16 hex digits): literals and parameters ignored
    operation: str  # repository operation that ran it, e.g. "get_conversation_messages"
    statement: str  # the statement with literals replaced by $n placeholders (never parameter values)
    calls: int  # slow operations in the window (kept spans, not re-weighted)
    p50_ms: float
    p95_ms: float
    max_ms: float
    # Summed over the group's operations: time waiting for a pooled connection, opening one, and executing.
    pool_wait_ms: float
    connect_ms: float
    execute_ms: float
    connects: int = 0  # operations that had to open a new connection
    idle_connects: int = 0  # ... of which the pool had been idle longer than its idle lifetime before
    pool: str = ""  # pool name ("asyncpg", "psycopg")
    pool_max_size: int | None = None
    example_trace_ids: tuple[str, ...] = ()
    plan: Mapping[str, Any] | None = None  # the "Plan" node of EXPLAIN (FORMAT JSON), newest captured
    plan_analyzed: bool = False

    @property
    def total_ms(self) -> float:
        return self.pool_wait_ms + self.connect_ms + self.execute_ms

    def share(self, part_ms: float) -> float:
        total = self.total_ms
        return part_ms / total if total > 0 else 0.0


@dataclass(frozen=True)
class Finding:
    """One conclusion about a group, most important first in a diagnosis."""

    kind: str  # "missing_index" | "pool_saturation" | "connect_after_idle" | "connect_setup" | "slow_execution"
    summary: str  # one line a person reads first
    detail: str = ""  # why Sieve thinks so, with the figures
    table: str | None = None  # schema-qualified when known
    columns: tuple[str, ...] = ()  # index key columns, with " DESC" where the sort needs it
    create_index: str | None = None  # the statement that would serve the lookup
    evidence: Mapping[str, Any] = field(default_factory=dict)  # plan nodes, shares: what the JSON output carries


@dataclass(frozen=True)
class DiagnosedGroup:
    """A group with its findings, most important first."""

    group: LookupGroup
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class Report:
    """What ``sieve slow-lookups`` prints: the window asked for and its groups, slowest first as the caller orders."""

    since: datetime
    until: datetime
    groups: tuple[DiagnosedGroup, ...] = ()
