"""``sieve slow-lookups`` output: ``render_text`` for people, ``render_json`` / ``to_dict`` for tools.

JSON shape, version 2 (a field is added without a version change; a rename, removal or change of meaning
bumps ``version``)::

    {
      "version": 2,
      "window": {"since": "2025-01-01T10:00:00+00:00", "until": "..."},     # ISO 8601
      "groups": [{                           # one per statement shape *and plan* (version 1: per shape)
        "fingerprint": "1a2b...",            # 16 hex digits, pg_query fingerprint
        "plan_hash": "9f3c..." | null,       # the plan's shape (16 hex digits); null: no plan known for these calls
        "plan_captured_at": "..." | null,    # when the plan shown was captured
        "first_seen": "...", "last_seen": "...",   # the group's first and last slow call
        "operation": "get_conversation_messages",
        "statement": "SELECT ... WHERE conversation_id = $1 ...",   # placeholders, never parameter values
        "calls": 142,                         # slow operations in the window
        "latency_ms": {"p50": 41.0, "p95": 80.3, "max": 120.4},
        "time_ms": {"pool_wait": 10.0, "connect": 0.0, "execute": 5800.0},   # summed over the calls
        "time_share": {"pool_wait": 0.002, "connect": 0.0, "execute": 0.998},  # 0..1, sums to 1 (0s if no time)
        "connects": 3, "idle_connects": 0,
        "pool": {"name": "asyncpg", "max_size": 8},                  # max_size null when unknown
        "example_trace_ids": ["4bf9..."],      # open one with `sieve trace <id>`
        "plan": null | {"analyzed": false, "key_nodes": [KeyNode, ...]},
        "plan_change": null | PlanChange,    # the fingerprint's plan changed in the window (from or to this plan)
        "findings": [{
          "kind": "missing_index",           # | pool_saturation | connect_after_idle | connect_setup | slow_execution
          "summary": "...", "detail": "...",
          "table": "public.messages" | null,
          "columns": ["conversation_id", "created_at DESC"],   # index keys as written in create_index
          "create_index": "CREATE INDEX CONCURRENTLY ..." | null,
          "evidence": {...}                  # per kind: time_share, and for missing_index pattern/scan/sort
        }]
      }],
      "plan_changes": [PlanChange, ...],     # every fingerprint whose plan changed in the window
      "n_plus_one": {
        "source": "scan" | "marked" | "off", # found in the stored spans / read from the sampler's marks
        "since": "..." | null,               # a scan looks at the window's last 15 minutes at most
        "groups": [{
          "parent": "call_tool",             # the span the loop ran under ("(parent not kept)" if not stored)
          "fingerprint": "...", "operation": "get_file", "statement": "SELECT ... WHERE id = $1" | "",
          "occurrences": 76, "traces": 76,   # (trace, parent) pairs where it happened
          "executions": {"p50": 6.0, "max": 6},          # per occurrence
          "time_ms": {"p50": 4.2, "max": 9.1, "sum": 320.0},   # in the repeated statements, per occurrence
          "marked": false,                   # the in-process detector marked the spans (sieve.db.n_plus_one)
          "example_trace_ids": ["..."],
          "fix": "...", "batched_statement": "SELECT ... WHERE id = ANY($1)" | null
        }]
      }
    }

    PlanChange = {"fingerprint", "operation", "from_plan_hash", "to_plan_hash", "changed_at",
                  "before": {"calls", "estimated_calls", "p50_ms", "p95_ms"}, "after": {...}}
                  # all kept calls (not only slow ones) nearest the change, up to 2,000 each side within an hour,
                  # percentiles weighted by adjusted count; changed_at: the call the new plan was first captured for

    KeyNode = {"node_type", "depth", "relation", "schema", "alias", "index_name", "filter", "index_cond",
               "sort_key": [str], "presorted_key": [str], "sort_method", "parallel", "plan_rows",
               "actual_rows" (null unless analyzed, all loops), "rows_removed_by_filter", "total_cost",
               "actual_total_ms" (per loop)}

Refinements over the first sketch: ``time_ms`` (the shares alone hide whether a group matters) and ``pool``
(a saturation finding names the pool; tools should not parse it from the summary). Version 2: groups
by fingerprint and plan, ``plan_changes``, ``n_plus_one``.
"""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from typing import Any

from pipeline.slowlookups.model import DiagnosedGroup, LookupGroup, NPlusOne, PlanChange, Report
from pipeline.slowlookups.plan import PlanNode, is_analyzed, key_nodes

JSON_VERSION = 2
_STATEMENT_CHARS = 200  # text output shows the start of a long statement; the JSON carries all of it
_EXAMPLE_TRACES = 3
_CELL_CHARS = 60  # a filter or condition longer than this is cut in the text output
_WIDTH = 110  # prose is wrapped to this; statements and CREATE INDEX stay on one line to copy them


def to_dict(report: Report) -> dict[str, Any]:
    """The versioned JSON shape documented above, as plain dicts and lists."""
    return {
        "version": JSON_VERSION,
        "window": {"since": report.since.isoformat(), "until": report.until.isoformat()},
        "groups": [_group_dict(d, report) for d in report.groups],
        "plan_changes": [_change_dict(c) for c in report.plan_changes],
        "n_plus_one": {
            "source": report.n_plus_one_source,
            "since": _iso(report.n_plus_one_since),
            "groups": [_repeat_dict(r) for r in report.n_plus_one],
        },
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _change_dict(c: PlanChange) -> dict[str, Any]:
    return {
        "fingerprint": c.fingerprint,
        "operation": c.operation,
        "from_plan_hash": c.from_plan_hash,
        "to_plan_hash": c.to_plan_hash,
        "changed_at": c.changed_at.isoformat(),
        "before": {
            "calls": c.before_calls,
            "estimated_calls": c.before_estimated_calls,
            "p50_ms": c.before_p50_ms,
            "p95_ms": c.before_p95_ms,
        },
        "after": {
            "calls": c.after_calls,
            "estimated_calls": c.after_estimated_calls,
            "p50_ms": c.after_p50_ms,
            "p95_ms": c.after_p95_ms,
        },
    }


def _repeat_dict(r: NPlusOne) -> dict[str, Any]:
    return {
        "parent": r.parent,
        "fingerprint": r.fingerprint,
        "operation": r.operation,
        "statement": r.statement,
        "occurrences": r.occurrences,
        "traces": r.traces,
        "executions": {"p50": r.executions_p50, "max": r.executions_max},
        "time_ms": {"p50": r.total_ms_p50, "max": r.total_ms_max, "sum": r.total_ms_sum},
        "marked": r.marked,
        "example_trace_ids": list(r.example_trace_ids),
        "first_seen": _iso(r.first_seen),
        "last_seen": _iso(r.last_seen),
        "fix": r.fix,
        "batched_statement": r.batched_statement,
    }


def _change_of(g: LookupGroup, report: Report) -> PlanChange | None:
    """The plan change this group's plan took part in (the newest one), if any."""
    found = [c for c in report.changes_of(g.fingerprint) if g.plan_hash in (c.from_plan_hash, c.to_plan_hash)]
    return found[-1] if found else None


def render_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, sort_keys=False, default=str)


def _group_dict(d: DiagnosedGroup, report: Report) -> dict[str, Any]:
    g = d.group
    change = _change_of(g, report)
    return {
        "fingerprint": g.fingerprint,
        "plan_hash": g.plan_hash,
        "plan_captured_at": _iso(g.plan_captured_at),
        "first_seen": _iso(g.first_seen),
        "last_seen": _iso(g.last_seen),
        "operation": g.operation,
        "statement": g.statement,
        "calls": g.calls,
        "latency_ms": {"p50": float(g.p50_ms), "p95": float(g.p95_ms), "max": float(g.max_ms)},
        "time_ms": {"pool_wait": float(g.pool_wait_ms), "connect": float(g.connect_ms), "execute": float(g.execute_ms)},
        "time_share": _shares(g),
        "connects": g.connects,
        "idle_connects": g.idle_connects,
        "pool": {"name": g.pool or None, "max_size": g.pool_max_size},
        "example_trace_ids": list(g.example_trace_ids),
        "plan": None
        if g.plan is None
        else {
            "analyzed": g.plan_analyzed or is_analyzed(g.plan),
            "key_nodes": [n.to_dict() for n in key_nodes(g.plan)],
        },
        "plan_change": _change_dict(change) if change else None,
        "findings": [
            {
                "kind": f.kind,
                "summary": f.summary,
                "detail": f.detail,
                "table": f.table,
                "columns": list(f.columns),
                "create_index": f.create_index,
                "evidence": dict(f.evidence),
            }
            for f in d.findings
        ],
    }


def _plan_dict(g: LookupGroup) -> dict[str, Any]:
    assert g.plan is not None
    return {
        "analyzed": g.plan_analyzed or is_analyzed(g.plan),
        "key_nodes": [n.to_dict() for n in key_nodes(g.plan)],
    }


def _shares(g: LookupGroup) -> dict[str, float]:
    return {
        "pool_wait": round(g.share(g.pool_wait_ms), 4),
        "connect": round(g.share(g.connect_ms), 4),
        "execute": round(g.share(g.execute_ms), 4),
    }


# -- text ------------------------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    """A page a person reads top to bottom: one block per group, findings last with the fix on its own line."""
    window = f"{report.since.isoformat(timespec='seconds')} .. {report.until.isoformat(timespec='seconds')}"
    lines: list[str] = []
    if not report.groups:
        lines.append(f"Slow lookups {window}: none.")
    else:
        n = len(report.groups)
        lines.append(f"Slow lookups {window}: {n} group{'s' if n != 1 else ''} (statement shape and plan)")
    shown: set[tuple[str, str]] = set()
    for d in report.groups:
        lines.append("")
        lines.extend(_group_lines(d, report, shown))
    others = [c for c in report.plan_changes if (c.fingerprint, c.to_plan_hash) not in shown]
    if others:
        lines += ["", "Plan changes (no slow calls under one of the plans):"]
        for c in others:
            lines.append(f"  {c.operation or '(no operation)'}  fingerprint {c.fingerprint}")
            lines.append(_wrap(_change_text(c), "  ", "    "))
    lines.extend(_n_plus_one_lines(report))
    return "\n".join(lines) + "\n"


def _clock(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _opt_ms(value: float | None) -> str:
    return _ms(value) if value is not None else "?"


def _change_text(c: PlanChange) -> str:
    head = f"plan changed at {_clock(c.changed_at)} ({c.from_plan_hash} -> {c.to_plan_hash})"
    if c.before_calls and c.after_calls:
        return (
            f"{head}: p95 {_opt_ms(c.before_p95_ms)} -> {_opt_ms(c.after_p95_ms)}, p50 {_opt_ms(c.before_p50_ms)} "
            f"-> {_opt_ms(c.after_p50_ms)} over all kept calls ({c.before_calls:,} before, {c.after_calls:,} after, "
            "nearest the change)"
        )
    side, calls, p95 = (
        ("after", c.after_calls, c.after_p95_ms) if c.after_calls else ("before", c.before_calls, c.before_p95_ms)
    )
    if not calls:
        return f"{head}: no kept calls on either side within an hour"
    return f"{head}: no kept calls on the other side within an hour; p95 {_opt_ms(p95)} {side} ({calls:,} calls)"


def _n_plus_one_lines(report: Report) -> list[str]:
    if report.n_plus_one_source == "off":
        return []
    how = "marked by the tail sampler" if report.n_plus_one_source == "marked" else "found in the stored spans"
    if report.n_plus_one_since is not None and report.n_plus_one_since > report.since:
        how += f" since {_clock(report.n_plus_one_since)}"
    if not report.n_plus_one:
        return ["", f"N+1: none ({how})."]
    lines = ["", f"N+1: one statement run again and again under one parent ({how})"]
    for r in report.n_plus_one:
        lines.append("")
        lines.append(
            f"{r.operation or '(statement)'} x{r.executions_p50:g} under {r.parent}  fingerprint {r.fingerprint}"
            + ("  [marked in-process]" if r.marked else "")
        )
        if r.statement:
            lines.append(f"  {_cut(r.statement, _STATEMENT_CHARS)}")
        lines.append(
            f"  {r.occurrences} time{'s' if r.occurrences != 1 else ''} in {r.traces} trace"
            f"{'s' if r.traces != 1 else ''}: {r.executions_p50:g} executions in a row (max {r.executions_max}), "
            f"{_ms(r.total_ms_p50)} per occurrence (max {_ms(r.total_ms_max)}), {_ms(r.total_ms_sum)} in all"
        )
        if r.example_trace_ids:
            lines.append(f"  traces: {', '.join(r.example_trace_ids[:_EXAMPLE_TRACES])}")
            lines.append(f"    open one: sieve trace {r.example_trace_ids[0]}")
        lines.append(_wrap(f"fix: {r.fix}", "  ", "     "))
        if r.batched_statement:
            lines.append("")
            lines.append(f"       {r.batched_statement}")
            lines.append("")
    return lines


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _group_lines(d: DiagnosedGroup, report: Report, shown: set[tuple[str, str]]) -> list[str]:
    g = d.group
    s = _shares(g)
    change = _change_of(g, report)
    plan = f"  plan {g.plan_hash}" if g.plan_hash else "  plan unknown"
    if change is not None and change.from_plan_hash == g.plan_hash:
        plan += f" (replaced at {_clock(change.changed_at)})"
    elif change is not None:
        plan += f" (since {_clock(change.changed_at)})"
    out = [
        f"{g.operation or '(no operation)'}  fingerprint {g.fingerprint}{plan}",
        f"  {_cut(g.statement, _STATEMENT_CHARS)}",
        (
            f"  {g.calls} slow call{'s' if g.calls != 1 else ''}  p50 {_ms(g.p50_ms)}  p95 {_ms(g.p95_ms)}  "
            f"max {_ms(g.max_ms)}"
        ),
        (
            f"  time: pool wait {s['pool_wait']:.0%}  connect {s['connect']:.0%}  execute {s['execute']:.0%}"
            f"  ({g.connects} new connection{'s' if g.connects != 1 else ''}, {g.idle_connects} after idle)"
        ),
    ]
    if change is not None and (g.fingerprint, change.to_plan_hash) not in shown:
        shown.add((g.fingerprint, change.to_plan_hash))
        out.append(_wrap(_change_text(change), "  ", "    "))
    if g.example_trace_ids:
        out.append(f"  traces: {', '.join(g.example_trace_ids[:_EXAMPLE_TRACES])}")
        out.append(f"    open one: sieve trace {g.example_trace_ids[0]}")
    if g.plan is not None:
        nodes = key_nodes(g.plan)
        kind = "analyzed" if g.plan_analyzed or is_analyzed(g.plan) else "estimated"
        out.append(f"  plan ({kind}): " + " -> ".join(_node_text(n) for n in nodes[:3]))
        if len(nodes) > 3:
            out.append("    -> " + " -> ".join(_node_text(n) for n in nodes[3:6]) + (" ..." if len(nodes) > 6 else ""))
    else:
        out.append("  plan: none captured")
    if not d.findings:
        out.append("  findings: none")
    for i, f in enumerate(d.findings, 1):
        out.append(_wrap(f"{i}. [{f.kind}] {f.summary}", "  ", "     "))
        if f.detail:
            out.append(_wrap(f.detail, "     ", "     "))
        if f.create_index:
            out.append("")
            out.append(f"       {f.create_index}")
            out.append("")
    return out


def _wrap(text: str, first: str, rest: str) -> str:
    return textwrap.fill(text, _WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)


def _node_text(n: PlanNode) -> str:
    parts = [n.label]
    if n.sort_key:
        parts.append(f"by {', '.join(n.sort_key)}")
    if n.index_cond:
        parts.append(f"cond {_cut(n.index_cond, _CELL_CHARS)}")
    if n.filter:
        parts.append(f"filter {_cut(n.filter, _CELL_CHARS)}")
    rows = f"rows {n.actual_rows:,.0f}" if n.actual_rows is not None else f"~{n.plan_rows:,.0f} rows"
    if n.rows_removed_by_filter:
        rows += f" ({n.rows_removed_by_filter:,.0f} removed)"
    parts.append(rows)
    if n.sort_method:
        parts.append(n.sort_method)
    return "[" + " ".join(parts) + "]"
