"""The demo's closing report: a dict (written as JSON) and its plain-text rendering."""

from __future__ import annotations

from typing import Any

from pipeline.demo.loadgen import LoadResult


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_report(
    load: LoadResult,
    spans: dict[str, Any],
    *,
    metrics_url: str | None,
    metric_families: int,
    spans_file: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    lat = load.latencies_s
    # Error share per 5-second window: the burst should stand out.
    windows: list[dict[str, Any]] = []
    for i in range(0, len(load.timeline), 5):
        chunk = load.timeline[i : i + 5]
        turns = sum(c["turns"] for c in chunk)
        errors = sum(c["errors"] for c in chunk)
        windows.append(
            {
                "from_s": chunk[0]["t_s"] - 1,
                "to_s": chunk[-1]["t_s"],
                "turns": turns,
                "errors": errors,
                "error_ratio": round(errors / turns, 3) if turns else 0.0,
                "burst": any(c["burst"] for c in chunk),
                "boost": max((c.get("boost", 1.0) for c in chunk), default=1.0),
                # The most a window raised the keep probability of an ordinary turn and of a MSG_LOOP line.
                "turn_keep": max((c["turn_keep"] for c in chunk if "turn_keep" in c), default=None, key=_effective),
                "log_keep": max((c["log_keep"] for c in chunk if "log_keep" in c), default=None, key=_effective),
            }
        )
    report: dict[str, Any] = {
        "load": {
            "duration_s": round(load.duration_s, 1),
            "turns": load.turns,
            "turns_per_s": round(load.turns / load.duration_s, 1) if load.duration_s else 0.0,
            "ok": load.ok,
            "errors": dict(load.errors),
            "slow_lookup_turns": load.slow_lookup_turns,
            "traceparent_turns": load.traceparent_turns,
            "latency_ms": {
                "p50": round(_pct(lat, 0.5) * 1000, 1),
                "p95": round(_pct(lat, 0.95) * 1000, 1),
                "p99": round(_pct(lat, 0.99) * 1000, 1),
            },
            "error_burst_s": [round(load.burst[0], 1), round(load.burst[1], 1)],
            "windows": windows,
        },
        "spans": spans,
        "metrics": {"url": metrics_url, "families": metric_families},
        "spans_file": spans_file,
    }
    report.update(extra or {})
    return report


def render(report: dict[str, Any]) -> str:
    load = report["load"]
    lat = load["latency_ms"]
    lines = [
        "",
        "Sieve demo report",
        "=================",
        (
            f"turns       {load['turns']} in {load['duration_s']} s ({load['turns_per_s']}/s), ok {load['ok']}, "
            f"errors {sum(load['errors'].values())} {load['errors'] or ''}"
        ),
        f"latency     p50 {lat['p50']} ms   p95 {lat['p95']} ms   p99 {lat['p99']} ms",
        (
            f"traffic     {load['slow_lookup_turns']} turns on long histories, "
            f"{load['traceparent_turns']} turns continued a client traceparent"
        ),
        "",
        "error ratio by window (the burst is marked *), and what the error boost and the kept-volume budget made",
        "of the keep probability of an ordinary call_tool turn and of a MSG_LOOP log line:",
    ]
    for w in load["windows"]:
        bar = "#" * round(w["error_ratio"] * 40)
        mark = "*" if w["burst"] else " "
        lines.append(
            f"  {w['from_s']:>4}-{w['to_s']:<4}s {mark} errors {w['error_ratio']:>6.1%}  "
            f"turns kept {_rate(w.get('turn_keep')):<16} lines kept {_rate(w.get('log_keep')):<16} {bar}"
        )
    spans = report["spans"]
    lines += ["", f"spans       {spans['total']} seen"]
    for name, count in list(spans["by_name"].items())[:12]:
        errors = spans["errors_by_name"].get(name, 0)
        lines.append(f"  {name:<40} {count:>7}" + (f"  ({errors} errors)" if errors else ""))
    lines += ["", "where storage time goes (share of operation time: pool wait / connect / execute):"]
    for op, s in spans["storage"].items():
        share = s["share"]
        lines.append(
            f"  {op:<38} n={s['count']:<6} p50 {s['p50_ms']:>7} ms  p95 {s['p95_ms']:>7} ms  "
            f"max {s['max_ms']:>7} ms   {share['pool_wait']:.0%} / {share['connect']:.0%} / {share['execute']:.0%}"
        )
    setup = report.get("setup", {})
    if setup:
        lines.append(
            f"  (history index {'present' if setup.get('history_index') else 'absent, as in the old schema'}; "
            f"quiet gaps {setup.get('quiet_gaps_s') or 'none'}; simulated connection set-up "
            f"{setup.get('db_connect_delay_s', 0)} s; a conversation's files read "
            f"{setup.get('file_lookups', 'one per file')})"
        )
    if report.get("slow_lookups_text"):
        lines += ["", report["slow_lookups_text"].rstrip()]
    if "sampling" in report:
        lines += _render_sampling(report["sampling"])
    if "event_loop" in report:
        lines += ["", f"event loop     worst timer lag {report['event_loop']['max_lag_ms']} ms"]
    if "sink" in report:
        sink = report["sink"]
        lines += [
            "",
            "postgres sink  written "
            + ", ".join(f"{k} {v}" for k, v in sink.get("written", {}).items())
            + f"; spooled {sink.get('spooled') or 0}; dropped {sink.get('dropped') or 0}",
        ]
    if "logs" in report:
        lines += _render_logs(report["logs"])
    metrics = report["metrics"]
    lines += ["", f"metrics     {metrics['families']} metric families at {metrics['url'] or '(endpoint off)'}"]
    if report.get("spans_file"):
        lines.append(f"traces      kept spans written to {report['spans_file']}")
    return "\n".join(lines) + "\n"


def _render_sampling(s: dict[str, Any]) -> list[str]:
    seen, kept = s["traces_seen"], s["traces_kept"]
    lines = [
        "",
        f"tail sampling  traces {seen} seen, {kept} kept ({kept / seen:.1%})" if seen else "tail sampling  no traces",
        f"               spans {s['spans_seen']} seen, {s['spans_kept']} kept, {s['spans_dropped']} dropped",
        "  kept by policy:    " + ", ".join(f"{k} {v}" for k, v in s["kept_by_policy"].items()),
        "  dropped by reason: " + ", ".join(f"{k} {v}" for k, v in s["dropped_by_reason"].items()),
    ]
    if s.get("decided_early"):
        lines.append("  decided early (bounds): " + ", ".join(f"{k} {v}" for k, v in s["decided_early"].items()))
    budget = s.get("budget") or {}
    if budget.get("traces_per_second"):
        lines.append(
            f"  kept-volume budget {budget['traces_per_second']:g} traces/s: errors and slow traces first, then "
            "boosted keys, then the baseline (thinned with a known probability, counted as policy=budget)"
        )
    return lines


def _effective(pair: tuple[float, float]) -> float:
    return pair[1]


def _rate(pair: Any) -> str:
    """``(base, effective)`` as "10 % -> 23 %" (or "10 %" when they are equal)."""
    if not pair:
        return "-"
    base, effective = pair

    def pct(p: float) -> str:
        return f"{p * 100:.3g} %"

    return pct(base) if abs(effective - base) < 1e-9 else f"{pct(base)} -> {pct(effective)}"


def _render_logs(logs: dict[str, Any]) -> list[str]:
    lines = ["", "log lines seen -> kept, per category (sampled before the record is built):"]
    kept = logs.get("kept_by_category", {})
    for category, seen in sorted(logs.get("seen_by_category", {}).items()):
        lines.append(f"  {category:<12} {_total(seen):>7} -> {_total(kept.get(category, 0)):<6}")
    lines.append(
        f"  error-level lines: {logs.get('errors_seen', 0)} seen, {logs.get('errors_kept', 0)} kept"
        f" (all kept: {'yes' if logs.get('all_errors_kept') else 'NO'})"
    )
    return lines


def _total(value: Any) -> int:
    return sum(_total(v) for v in value.values()) if isinstance(value, dict) else int(value)
