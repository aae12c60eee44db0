"""The demo workload with no telemetry vs with Sieve's instrumentation, in the same run.

The provider's latency and the clients' think time are set to zero so the workload is CPU-bound: what the
instrumentation costs shows up fully in turns per second (the worst case; with real provider latency the
overhead hides in waiting). Rounds alternate baseline and instrumented to spread machine noise over both.
Spans go through the SDK's batch processor to an exporter that encodes them as OTLP protobuf and discards the
bytes, so the cost of export is counted but no network is involved.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pipeline.config import Settings, load_settings
from pipeline.demo.loadgen import LoadGenerator
from pipeline.demo.run import start_stack


class EncodingExporter(SpanExporter):
    """Encode like the OTLP exporter would, then drop: export cost without a network."""

    def __init__(self) -> None:
        self.spans = 0
        self.bytes = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.bytes += len(encode_spans(spans).SerializeToString())
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


async def _round(settings: Settings, instrumented: bool, duration_s: float) -> dict[str, Any]:
    stack = await start_stack(settings, instrumented=instrumented)
    exporter = EncodingExporter()
    if stack.telemetry is not None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        stack.telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        load = LoadGenerator(stack.service.url, settings, stack.provider)
        await load.run(2.0, burst=False)  # warm-up: pools, caches, first connections
        result = await load.run(duration_s, burst=False)
    finally:
        await stack.close()
    lat = sorted(result.latencies_s)
    return {
        "turns_per_s": result.turns / result.duration_s,
        "p50_ms": lat[len(lat) // 2] * 1000 if lat else 0.0,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0,
        "errors": result.error_count,
        "spans_exported": exporter.spans,
    }


def run(quick: bool = False) -> dict[str, Any]:
    duration_s = 4.0 if quick else 10.0
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="sieve-bench-") as tmp:
        settings = load_settings(
            environ={},
            database={"data_dir": str(Path(tmp) / "pg")},
            prometheus={"port": 0},
            service={"port": 0, "pool_idle_lifetime_s": 0, "db_connect_delay_s": 0},
            provider={"latency_median_s": 0.0, "failure_rate": 0.0, "chunks": 4},
            demo={"clients": 4, "think_time_s": 0.0, "heavy_conversations": 0, "slow_lookup_share": 0.0},
        )
        base: list[dict[str, Any]] = []
        inst: list[dict[str, Any]] = []
        for _ in range(rounds):
            base.append(asyncio.run(_round(settings, False, duration_s)))
            inst.append(asyncio.run(_round(settings, True, duration_s)))

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 2)

    out = {
        "workload": f"{settings.demo.clients} clients, provider latency 0, {rounds} x {duration_s:.0f} s per side",
        "baseline": {k: med(base, k) for k in ("turns_per_s", "p50_ms", "p99_ms")},
        "instrumented": {k: med(inst, k) for k in ("turns_per_s", "p50_ms", "p99_ms")},
        "spans_exported_last_round": inst[-1]["spans_exported"],
    }
    out["throughput_ratio"] = round(out["instrumented"]["turns_per_s"] / out["baseline"]["turns_per_s"], 3)
    out["p99_ratio"] = round(out["instrumented"]["p99_ms"] / max(out["baseline"]["p99_ms"], 1e-9), 3)
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
