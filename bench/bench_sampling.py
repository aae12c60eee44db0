"""Cost of the in-process tail sampler, against the SDK's BatchSpanProcessor alone, in the same run.

Reports spans/s for ``TailSamplingProcessor -> BatchSpanProcessor(no-op exporter)`` and for
``BatchSpanProcessor`` alone (median of interleaved rounds), the added cost per span in microseconds, the
decision cost per trace for the default policies, and the memory retained per buffered span (tracemalloc).

``python -m bench.bench_sampling [--quick]`` prints the result as JSON.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from pipeline.sampling import TailSamplingProcessor, default_config
from pipeline.sampling.engine import DecisionEngine
from pipeline.sampling.testing import make_trace
from pipeline.sampling.trace import TraceView

SPANS_PER_TRACE = 4


class _NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _spans_per_second(processor: SpanProcessor, traces: int) -> float:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    start = time.perf_counter()
    for i in range(traces):
        with tracer.start_as_current_span("call_tool", attributes={"op": "call_tool", "i": i}):
            for child in ("conversation.lookup", "history.read", "message.write"):
                with tracer.start_as_current_span(child, attributes={"db.system": "postgresql", "i": i}):
                    pass
    elapsed = time.perf_counter() - start
    provider.shutdown()
    return traces * SPANS_PER_TRACE / elapsed


def _throughput(traces: int, rounds: int) -> dict[str, float]:
    base: list[float] = []
    tail: list[float] = []
    for _ in range(rounds):  # interleaved, so drift in machine load hits both sides
        base.append(_spans_per_second(BatchSpanProcessor(_NoopExporter()), traces))
        tail.append(
            _spans_per_second(TailSamplingProcessor(BatchSpanProcessor(_NoopExporter()), default_config()), traces)
        )
    base_sps, tail_sps = statistics.median(base), statistics.median(tail)
    return {
        "baseline_spans_per_s": round(base_sps),
        "tail_spans_per_s": round(tail_sps),
        "throughput_ratio": round(tail_sps / base_sps, 3),
        "baseline_us_per_span": round(1e6 / base_sps, 2),
        "added_us_per_span": round(1e6 / tail_sps - 1e6 / base_sps, 2),
    }


def _decision_cost(traces: int) -> float:
    engine = DecisionEngine(default_config().policies)
    views = [TraceView(i + 1, make_trace(i + 1, children=3)) for i in range(traces)]
    start = time.perf_counter()
    for view in views:
        engine.decide(view, 0.0)
    return (time.perf_counter() - start) / traces * 1e6


def _memory_per_buffered_span(traces: int) -> float:
    # Nothing is decided while we measure: the root grace and decision_wait are an hour long.
    config = dataclasses.replace(
        default_config(),
        decision_wait_s=3600.0,
        decision_wait_after_root_received_s=3600.0,
        num_traces=traces + 1,
        max_buffered_spans=traces * SPANS_PER_TRACE + 1,
        max_queue_spans=traces * SPANS_PER_TRACE + 1,
    )
    processor = TailSamplingProcessor(BatchSpanProcessor(_NoopExporter()), config)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(traces):
        with tracer.start_as_current_span("call_tool", attributes={"op": "call_tool", "i": i}):
            for child in ("conversation.lookup", "history.read", "message.write"):
                with tracer.start_as_current_span(child, attributes={"db.system": "postgresql", "i": i}):
                    pass
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    held = processor.stats()
    provider.shutdown()
    spans = held["buffered_spans"] + held["queued_spans"]
    return (after - before) / max(1, spans)


def run(quick: bool = False) -> dict[str, Any]:
    """Measure; ``quick`` keeps it under ~10 s, the full run under ~60 s."""
    traces, rounds = (2_000, 3) if quick else (10_000, 5)
    started = time.perf_counter()
    result: dict[str, Any] = {"bench": "sampling", "quick": quick, "spans": traces * SPANS_PER_TRACE}
    result.update(_throughput(traces, rounds))
    result["decision_us_per_trace"] = round(_decision_cost(2_000 if quick else 10_000), 2)
    result["bytes_per_buffered_span"] = round(_memory_per_buffered_span(1_000 if quick else 5_000))
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
