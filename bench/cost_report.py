"""The cost benchmark's arithmetic: one variant's window into a row, rows into per-round ratios, rounds into
medians, and the three-way table. Pure functions over plain dicts, so they are tested without a server.

A *window* is what the load generator measured over the measured window of one round of one variant::

    {"turns": 3000, "window_s": 15.0, "server_cpu_s": 6.1, "loop_cpu_s": 4.9, "pg_cpu_s": 2.0, "load_cpu_s": 3.2,
     "errors": 0, "latencies_ms": [...], "scrapes": 3}

The figure of record is server CPU per turn (``server_cpu_s / turns`` in microseconds): on a shared 2-core
machine it is far steadier than throughput. Ratios are taken within a round (c/b, c/a on the same machine
minutes apart) and the median of each ratio over rounds is what a target is judged on.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

VARIANTS = ("none", "otel", "sieve")  # (a), (b), (c): the order of a round
LETTER = {"none": "a", "otel": "b", "sieve": "c"}
TITLE = {"none": "a  no telemetry", "otel": "b  plain OpenTelemetry", "sieve": "c  Sieve"}
ROW_KEYS = (
    "cpu_us_per_turn",
    "loop_cpu_us_per_turn",
    "turns_per_s",
    "p50_ms",
    "p99_ms",
    "pg_cpu_us_per_turn",
    "load_cpu_us_per_turn",
    "server_cores",
    "idle_cpu_ms_per_s",
)
# name -> (numerator variant, denominator variant, row key)
RATIOS: dict[str, tuple[str, str, str]] = {
    "cpu_c_over_b": ("sieve", "otel", "cpu_us_per_turn"),
    "cpu_c_over_a": ("sieve", "none", "cpu_us_per_turn"),
    "cpu_b_over_a": ("otel", "none", "cpu_us_per_turn"),
    "p99_c_over_a": ("sieve", "none", "p99_ms"),
    "p99_c_over_b": ("sieve", "otel", "p99_ms"),
    "tps_c_over_a": ("sieve", "none", "turns_per_s"),
    "tps_c_over_b": ("sieve", "otel", "turns_per_s"),
}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of unsorted ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def variant_row(window: Mapping[str, Any]) -> dict[str, Any]:
    """One variant's figures for one round, from its measured window."""
    turns = int(window["turns"])
    per_turn_us = 1e6 / turns if turns else float("nan")
    lat = window.get("latencies_ms") or []
    pg = window.get("pg_cpu_s")
    loop = window.get("loop_cpu_s")
    row: dict[str, Any] = {
        "cpu_us_per_turn": round(window["server_cpu_s"] * per_turn_us, 1),
        # The main thread (the event loop) apart from the rest (batch processors, sampler, sink, readers).
        "loop_cpu_us_per_turn": round(loop * per_turn_us, 1) if loop is not None else None,
        "turns_per_s": round(turns / window["window_s"], 1),
        "p50_ms": round(percentile(lat, 0.50), 2),
        "p99_ms": round(percentile(lat, 0.99), 2),
        "pg_cpu_us_per_turn": round(pg * per_turn_us, 1) if pg is not None else None,
        "load_cpu_us_per_turn": round(window["load_cpu_s"] * per_turn_us, 1),
        "server_cores": round(window["server_cpu_s"] / window["window_s"], 2),
        # With no load: a cost per second, which CPU per turn spreads over fewer turns when throughput is lower.
        "idle_cpu_ms_per_s": round(1000 * window["idle_cpu_s"] / window["idle_s"], 1) if window.get("idle_s") else None,
        "turns": turns,
        "window_s": round(window["window_s"], 2),
        "errors": int(window.get("errors", 0)),
    }
    return row


def ratios(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """The ratios of one round; None where a variant is missing or a denominator is zero."""
    out: dict[str, float | None] = {}
    for name, (top, bottom, key) in RATIOS.items():
        a, b = rows.get(top, {}).get(key), rows.get(bottom, {}).get(key)
        out[name] = round(a / b, 3) if a is not None and b else None
    return out


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def summarise(rounds: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Per-round rows and ratios, and the median over rounds of every figure and every ratio.

    ``rounds`` holds, per round, a row (``variant_row``) per variant name.
    """
    per_round: list[dict[str, Any]] = []
    for i, rows in enumerate(rounds, 1):
        per_round.append({"round": i, **{v: dict(rows[v]) for v in VARIANTS if v in rows}, "ratios": ratios(rows)})
    median: dict[str, Any] = {}
    for v in VARIANTS:
        present = [rows[v] for rows in rounds if v in rows]
        if present:
            median[v] = {k: _median([r.get(k) for r in present]) for k in ROW_KEYS}
    median["ratios"] = {name: _median([r["ratios"][name] for r in per_round]) for name in RATIOS}
    return {"rounds": per_round, "median": median}


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(summary: Mapping[str, Any]) -> list[str]:
    """The three-way table: medians per variant, then the ratios per round and their median."""
    median = summary["median"]
    lines = [
        (
            f"{'variant (median of rounds)':28} {'CPU us/turn':>12} {'on loop':>8} {'turns/s':>9} {'p50 ms':>8}"
            f" {'p99 ms':>8} {'PG us/turn':>11} {'server cores':>13} {'idle ms/s':>10}"
        ),
    ]
    for v in VARIANTS:
        if v not in median:
            continue
        m = median[v]
        lines.append(
            f"{TITLE[v]:28} {_fmt(m['cpu_us_per_turn']):>12} {_fmt(m['loop_cpu_us_per_turn']):>8}"
            f" {_fmt(m['turns_per_s']):>9}"
            f" {_fmt(m['p50_ms'], 2):>8} {_fmt(m['p99_ms'], 2):>8} {_fmt(m['pg_cpu_us_per_turn']):>11}"
            f" {_fmt(m['server_cores'], 2):>13} {_fmt(m['idle_cpu_ms_per_s'], 1):>10}"
        )
    names = ("cpu_c_over_b", "cpu_c_over_a", "p99_c_over_a", "tps_c_over_a")
    heads = [f"{LETTER[v]} us/turn" for v in VARIANTS] + ["CPU c/b", "CPU c/a", "p99 c/a", "turns/s c/a"]
    lines.append("")
    lines.append(f"{'per round':28} " + " ".join(f"{h:>11}" for h in heads))
    for r in summary["rounds"]:
        cpu = [_fmt(r[v]["cpu_us_per_turn"]) if v in r else "-" for v in VARIANTS]
        ratio = [_fmt(r["ratios"][n], 3) for n in names]
        lines.append(f"{'  round ' + str(r['round']):28} " + " ".join(f"{c:>11}" for c in cpu + ratio))
    cpu = [_fmt(median[v]["cpu_us_per_turn"]) if v in median else "-" for v in VARIANTS]
    ratio = [_fmt(median["ratios"][n], 3) for n in names]
    lines.append(f"{'  median':28} " + " ".join(f"{c:>11}" for c in cpu + ratio))
    return lines
