"""``sieve slow-lookups`` output: ``render_text`` for people, ``render_json`` / ``to_dict`` for tools.

JSON shape, version 1 (a field is added without a version change; a rename, removal or change of meaning
bumps ``version``)::

    {
      "version": 1,
      "window": {"since": "2025-01-01T10:00:00+00:00", "until": "..."},     # ISO 8601
      "groups": [{
        "fingerprint": "1a2b...",            # 16 hex digits, pg_query fingerprint
        "operation": "get_conversation_messages",
        "statement": "SELECT ... WHERE conversation_id = $1 ...",   # placeholders, never parameter values
        "calls": 142,                         # slow operations in the window
        "latency_ms": {"p50": 41.0, "p95": 80.3, "max": 120.4},
        "time_ms": {"pool_wait": 10.0, "connect": 0.0, "execute": 5800.0},   # summed over the calls
        "time_share": {"pool_wait": 0.002, "connect": 0.0, "execute": 0.998},  # 0..1, sums to 1 (0s if no time)
        "connects": 3, "idle_connects": 0,
        "pool": {"name": "asyncpg", "max_size": 8},                  # max_size null when unknown
        "example_trace_ids": ["4bf9..."],
        "plan": null | {"analyzed": false, "key_nodes": [KeyNode, ...]},
        "findings": [{
          "kind": "missing_index",           # | pool_saturation | connect_after_idle | connect_setup | slow_execution
          "summary": "...", "detail": "...",
          "table": "public.messages" | null,
          "columns": ["conversation_id", "created_at DESC"],   # index keys as written in create_index
          "create_index": "CREATE INDEX CONCURRENTLY ..." | null,
          "evidence": {...}                  # per kind: time_share, and for missing_index pattern/scan/sort
        }]
      }]
    }

    KeyNode = {"node_type", "depth", "relation", "schema", "alias", "index_name", "filter", "index_cond",
               "sort_key": [str], "presorted_key": [str], "sort_method", "parallel", "plan_rows",
               "actual_rows" (null unless analyzed, all loops), "rows_removed_by_filter", "total_cost",
               "actual_total_ms" (per loop)}

Refinements over the first sketch: ``time_ms`` (the shares alone hide whether a group matters) and ``pool``
(a saturation finding names the pool; tools should not parse it from the summary).
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from pipeline.slowlookups.model import DiagnosedGroup, LookupGroup, Report
from pipeline.slowlookups.plan import PlanNode, is_analyzed, key_nodes

JSON_VERSION = 1
_STATEMENT_CHARS = 200  # text output shows the start of a long statement; the JSON carries all of it
_EXAMPLE_TRACES = 3
_CELL_CHARS = 60  # a filter or condition longer than this is cut in the text output
_WIDTH = 110  # prose is wrapped to this; statements and CREATE INDEX stay on one line to copy them


def to_dict(report: Report) -> dict[str, Any]:
    """The versioned JSON shape documented above, as plain dicts and lists."""
    return {
        "version": JSON_VERSION,
        "window": {"since": report.since.isoformat(), "until": report.until.isoformat()},
        "groups": [_group_dict(d) for d in report.groups],
    }


def render_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, sort_keys=False, default=str)


def _group_dict(d: DiagnosedGroup) -> dict[str, Any]:
    g = d.group
    return {
        "fingerprint": g.fingerprint,
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
    if not report.groups:
        return f"Slow lookups {window}: none.\n"
    n = len(report.groups)
    lines = [f"Slow lookups {window}: {n} statement shape{'s' if n != 1 else ''}"]
    for d in report.groups:
        lines.append("")
        lines.extend(_group_lines(d))
    return "\n".join(lines) + "\n"


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _group_lines(d: DiagnosedGroup) -> list[str]:
    g = d.group
    s = _shares(g)
    out = [
        f"{g.operation or '(no operation)'}  fingerprint {g.fingerprint}",
        f"  {_cut(g.statement, _STATEMENT_CHARS)}",
        f"  {g.calls} slow call{'s' if g.calls != 1 else ''}  p50 {_ms(g.p50_ms)}  p95 {_ms(g.p95_ms)}  "
        f"max {_ms(g.max_ms)}",
        f"  time: pool wait {s['pool_wait']:.0%}  connect {s['connect']:.0%}  execute {s['execute']:.0%}"
        f"  ({g.connects} new connection{'s' if g.connects != 1 else ''}, {g.idle_connects} after idle)",
    ]
    if g.example_trace_ids:
        out.append(f"  traces: {', '.join(g.example_trace_ids[:_EXAMPLE_TRACES])}")
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
