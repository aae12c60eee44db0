"""``sieve trace`` output: ``render_text`` draws a trace as a waterfall for a terminal, ``render_json`` /
``to_dict`` give tools the same content.

JSON shape, version 1 (a field is added without a version change; a rename, removal or change of meaning bumps
``version``)::

    {
      "version": 1,
      "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
      "start": "2025-01-01T10:00:00.123000+00:00", "duration_ms": 142.3,     # first span start .. last span end
      "services": ["sieve-demo"],
      "kept": {"reason": "slow-lookups" | null, "probability": 1.0 | null},  # as the tail sampler stamped it
      "orphans": 0,                          # spans whose parent the sink does not have (shown at the top level)
      "spans": [{                            # depth first, children in start order
        "span_id": "...", "parent_span_id": "..." | null, "depth": 1,
        "name": "get_conversation_messages", "kind": "internal", "service": "sieve-demo",
        "status": {"code": "unset" | "ok" | "error", "message": "..." | null},
        "start": "...", "offset_ms": 2.1, "duration_ms": 45.1,
        "db": null | {                       # spans of the storage collector and the drivers
          "operation": "get_conversation_messages" | null, "fingerprint": "..." | null,
          "statement": "SELECT ... WHERE conversation_id = $1 ..." | null,   # placeholders, never values
          "summary": "SELECT public.messages" | null,
          "time_ms": null | {"pool_wait": 0.1, "connect": 0.0, "execute": 44.9},  # repository operations only
          "slow": false, "statements": 1 | null, "rows": 5 | null,
          "n_plus_one": null | {"count": 6}  # marked by the tail sampler's N+1 detector
        },
        "plan": null | {                     # EXPLAIN spans: the plan captured for their parent call
          "hash": "9f3c..." | null, "cached": false, "analyzed": false,
          "key_nodes": [KeyNode, ...]        # as in `sieve slow-lookups --json`
        },
        "attributes": {...}                  # everything the span carries (parameters are never recorded)
      }],
      "events": [{"ts": "...", "offset_ms": 3.0, "type": "...", "data": {...}, "source": "..."}]
    }
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.names import sampling as sm
from pipeline.names import storage as st
from pipeline.slowlookups.plan import is_analyzed, key_nodes
from pipeline.slowlookups.trace import TraceSpan, TraceView

JSON_VERSION = 1
_NAME_WIDTH = 44
_BAR_WIDTH = 32
_STATEMENT_CHARS = 160
_EVENT_CHARS = 140


def _offset_ms(view: TraceView, span: TraceSpan) -> float:
    return (span.start - view.start).total_seconds() * 1000


def _db(span: TraceSpan) -> dict[str, Any] | None:
    a = span.attributes
    if st.FINGERPRINT not in a and st.DB_SYSTEM not in a and "db.system" not in a:
        return None
    split = span.split_ms()
    count = a.get(st.N_PLUS_ONE_COUNT)
    return {
        "operation": a.get(st.DB_OPERATION),
        "fingerprint": a.get(st.FINGERPRINT),
        "statement": a.get(st.STATEMENT),
        "summary": a.get(st.QUERY_SUMMARY),
        "time_ms": None
        if split is None
        else {"pool_wait": round(split[0], 3), "connect": round(split[1], 3), "execute": round(split[2], 3)},
        "slow": a.get(st.SLOW) is True,
        "statements": a.get(st.STATEMENTS),
        "rows": a.get(st.ROWS),
        "n_plus_one": {"count": count} if a.get(st.N_PLUS_ONE) is True or count is not None else None,
    }


def _plan(span: TraceSpan) -> dict[str, Any] | None:
    if span.plan is None and st.PLAN_HASH not in span.attributes:
        return None
    nodes = key_nodes(span.plan) if span.plan else ()
    return {
        "hash": span.attr(st.PLAN_HASH),
        "cached": span.attr(st.PLAN_CACHED) is True,
        "analyzed": span.attr(st.PLAN_ANALYZED) is True or (bool(span.plan) and is_analyzed(span.plan)),
        "key_nodes": [n.to_dict() for n in nodes],
    }


def to_dict(view: TraceView) -> dict[str, Any]:
    """The versioned JSON shape documented above, as plain dicts and lists."""
    root = view.spans[0]
    return {
        "version": JSON_VERSION,
        "trace_id": view.trace_id,
        "start": view.start.isoformat(),
        "duration_ms": round(view.duration_ms, 3),
        "services": sorted({s.service for s in view.spans if s.service}),
        "kept": {"reason": root.sampling_reason, "probability": root.sampling_probability},
        "orphans": view.orphans,
        "spans": [
            {
                "span_id": s.span_id,
                "parent_span_id": s.parent_span_id,
                "depth": s.depth,
                "name": s.name,
                "kind": s.kind,
                "service": s.service,
                "status": {"code": s.status_code, "message": s.status_message},
                "start": s.start.isoformat(),
                "offset_ms": round(_offset_ms(view, s), 3),
                "duration_ms": round(s.duration_ms, 3),
                "db": _db(s),
                "plan": _plan(s),
                "attributes": dict(s.attributes),
            }
            for s in view.spans
        ],
        "events": [
            {
                "ts": e.ts.isoformat(),
                "offset_ms": round((e.ts - view.start).total_seconds() * 1000, 3),
                "type": e.type,
                "data": dict(e.data),
                "source": e.source,
            }
            for e in view.events
        ],
    }


def render_json(view: TraceView) -> str:
    return json.dumps(to_dict(view), indent=2, default=str)


# -- text ------------------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bar(view: TraceView, span: TraceSpan) -> str:
    total = max(view.duration_ms, 1e-6)
    start = int(_offset_ms(view, span) / total * _BAR_WIDTH)
    start = min(max(start, 0), _BAR_WIDTH - 1)
    length = max(1, round(span.duration_ms / total * _BAR_WIDTH))
    length = min(length, _BAR_WIDTH - start)
    return "|" + " " * start + "#" * length + " " * (_BAR_WIDTH - start - length) + "|"


def _details(span: TraceSpan) -> list[str]:
    a = span.attributes
    out: list[str] = []
    split = span.split_ms()
    if split is not None:
        out.append(f"wait {_ms(split[0])} / connect {_ms(split[1])} / execute {_ms(split[2])}")
    if a.get(st.SLOW) is True:
        out.append("SLOW")
    statements = a.get(st.STATEMENTS)
    if isinstance(statements, int) and statements > 1:
        out.append(f"{statements} statements")
    if a.get(st.N_PLUS_ONE) is True or st.N_PLUS_ONE_COUNT in a:
        out.append(f"N+1 x{a.get(st.N_PLUS_ONE_COUNT, '?')}")
    if span.name == "EXPLAIN" or span.plan is not None:
        kind = "cached" if a.get(st.PLAN_CACHED) is True else "captured"
        out.append(f"plan {a.get(st.PLAN_HASH) or '(no hash)'} ({kind})")
    elif st.FINGERPRINT in a:
        out.append(f"fp {a[st.FINGERPRINT]}")
    if span.status_code == "error":
        out.append(f"ERROR {span.status_message or a.get(st.ERROR_TYPE) or ''}".rstrip())
    return out


def _sub_lines(span: TraceSpan, indent: str) -> list[str]:
    a = span.attributes
    lines: list[str] = []
    if span.plan:
        nodes = key_nodes(span.plan)
        if nodes:
            lines.append(f"{indent}plan: " + " -> ".join(_node(n.label, n.rows) for n in nodes[:5]))
    elif isinstance(a.get(st.STATEMENT), str) and span.is_operation:
        lines.append(f"{indent}{_cut(a[st.STATEMENT], _STATEMENT_CHARS)}")
    return lines


def _node(label: str, rows: float) -> str:
    return f"[{label} ~{rows:,.0f} rows]"


def render_text(view: TraceView) -> str:
    """The trace as a waterfall: offset, duration, the span tree, a bar on the trace's time line, what the storage
    collector recorded; then the application events that name the trace."""
    root = view.spans[0]
    kept = ""
    if root.sampling_reason:
        p = root.sampling_probability
        kept = f"  kept by {root.sampling_reason}" + (f" (p {p:g})" if p is not None else "")
    services = ", ".join(sorted({s.service for s in view.spans if s.service})) or "-"
    n = len(view.spans)
    lines = [
        (
            f"trace {view.trace_id}  {services}  {view.start.isoformat(timespec='milliseconds')}  "
            f"{_ms(view.duration_ms)}  {n} span{'s' if n != 1 else ''}{kept}"
        ),
        "",
        (
            f"{'offset':>9} {'duration':>9}  {'span':<{_NAME_WIDTH}} "
            f"{'0':<{_BAR_WIDTH // 2 + 1}}{_ms(view.duration_ms):>{_BAR_WIDTH // 2 + 1}}"
        ),
    ]
    for span in view.spans:
        indent = "  " * span.depth
        kind = f" [{span.kind}]" if span.kind not in ("internal", "") else ""
        name = indent + _cut(span.name + kind, _NAME_WIDTH - len(indent))
        details = "  ".join(_details(span))
        lines.append(
            f"{_offset_ms(view, span):>9.1f} {_ms(span.duration_ms):>9}  {name:<{_NAME_WIDTH}} {_bar(view, span)}"
            + (f"  {details}" if details else "")
        )
        lines.extend(_sub_lines(span, " " * 21 + indent + "  "))
    if view.orphans:
        lines.append("")
        lines.append(
            f"{view.orphans} span{'s' if view.orphans != 1 else ''} whose parent the sink does not have (dropped, or "
            "in another service) are shown at the top level."
        )
    lines.append("")
    if view.events:
        lines.append("events of this trace (application events whose data names it):")
        for e in view.events:
            offset = (e.ts - view.start).total_seconds() * 1000
            data = json.dumps(dict(e.data), sort_keys=True, default=str)
            lines.append(f"{offset:>9.1f} ms  {e.type}  {_cut(data, _EVENT_CHARS)}")
    else:
        lines.append("events of this trace: none in the sink (log records are not stored there; they go to OTLP)")
    if any(s.attributes.get(sm.SPAN_CACHED_DECISION) for s in view.spans):
        lines.append("some spans arrived after the sampler's decision and followed it (late spans)")
    return "\n".join(lines) + "\n"


def no_such_trace(trace_id: str, retention: int | None) -> str:
    """The one-line message (and hint) for a trace the sink does not have."""
    kept_for = f"{retention} days" if retention else "its retention"
    return (
        f"no trace {trace_id} in the sink: the tail sampler may have dropped it (only kept traces are stored), "
        f"it may be older than {kept_for}, or not written yet (the sink flushes every few seconds)"
    )
