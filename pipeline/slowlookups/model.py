"""What `sieve slow-lookups` works on: slow storage spans grouped by statement fingerprint and plan, and what it
concludes.

A ``LookupGroup`` is one row of ``monitoring.get_slow_lookup_groups`` (sql/functions/50_slow_lookups.sql): the slow
repository operations of a window that ran the same statement shape under the same plan (before and after an index
are two groups). ``diagnose`` turns one into ``Finding``s. A ``PlanChange`` is a fingerprint whose plan changed in
the window, with the latency of all its kept calls on both sides; an ``NPlusOne`` is one statement shape run N+
times in a row under one parent span. All are plain values so the diagnosis is pure and tested without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class LookupGroup:
    """The slow calls of one statement shape in one repository operation, with their timings split by phase."""

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
    plan: Mapping[str, Any] | None = None  # the "Plan" node of EXPLAIN (FORMAT JSON): the group's plan, newest capture
    plan_analyzed: bool = False
    plan_hash: str | None = None  # the plan's shape (16 hex digits); None: no plan known for these calls
    plan_captured_at: datetime | None = None  # when the plan shown was captured
    first_seen: datetime | None = None  # first and last slow call of the group in the window
    last_seen: datetime | None = None

    @property
    def total_ms(self) -> float:
        return self.pool_wait_ms + self.connect_ms + self.execute_ms

    def share(self, part_ms: float) -> float:
        total = self.total_ms
        return part_ms / total if total > 0 else 0.0


@dataclass(frozen=True)
class PlanChange:
    """A fingerprint whose plan changed in the window: latency of all its kept calls under each plan.

    Calls are the kept operation spans nearest the change (up to 2,000 each side, within an hour), percentiles
    weighted by adjusted count. ``changed_at`` is the start of the call the new plan was first captured for: the
    change happened at most a plan-cache TTL before it."""

    fingerprint: str
    operation: str
    from_plan_hash: str
    to_plan_hash: str
    changed_at: datetime
    before_calls: int  # kept spans used
    before_estimated_calls: float  # the same re-weighted by adjusted count
    before_p50_ms: float | None
    before_p95_ms: float | None
    after_calls: int
    after_estimated_calls: float
    after_p50_ms: float | None
    after_p95_ms: float | None


@dataclass(frozen=True)
class NPlusOne:
    """One statement shape executed N+ times one after another under one parent span, in ``occurrences`` places."""

    parent: str  # the parent span's name ("call_tool"), or "(parent not kept)"
    fingerprint: str
    operation: str  # the repeated span's name: a repository operation, or the driver's statement span
    statement: str  # normalised statement, "" when only the drivers' spans had it
    occurrences: int  # (trace, parent) pairs where it happened
    traces: int
    executions_p50: float  # executions per occurrence
    executions_max: int
    total_ms_p50: float  # time in the repeated statements per occurrence
    total_ms_max: float
    total_ms_sum: float
    marked: bool = False  # the tail sampler's in-process detector marked these spans (sieve.db.n_plus_one)
    example_trace_ids: tuple[str, ...] = ()
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    fix: str = ""  # what to do instead, one line
    batched_statement: str | None = None  # the one statement that replaces the loop, when Sieve can write it


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
    plan_changes: tuple[PlanChange, ...] = ()
    n_plus_one: tuple[NPlusOne, ...] = ()
    n_plus_one_source: str = "off"  # "scan" (grouped from stored spans), "marked" (the sampler's marks), "off"
    n_plus_one_since: datetime | None = None  # where the N+1 search started (a scan: the window's last hour)

    def changes_of(self, fingerprint: str) -> tuple[PlanChange, ...]:
        return tuple(c for c in self.plan_changes if c.fingerprint == fingerprint)
