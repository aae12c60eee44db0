"""Cost per call of a dropped hot-path log line: Sieve's category logger against loguru and stdlib, same run.

What is compared (ns per call on the calling thread, medians of several rounds):

* ``sieve_dropped``: ``CategoryLogger.debug`` at rate 0, outside a trace (decided at once);
* ``sieve_dropped_in_trace``: the same inside a sampled span: held as a tuple, then the trace is dropped (the
  decision's cost is included: one ``on_decision`` per 100 lines);
* ``loguru_filter_dropped``: ``logger.debug`` to a sink whose ``filter`` function drops it at the same rate
  (loguru builds the record before the filter runs);
* ``loguru_below_level``: ``logger.debug`` when every sink is at INFO;
* ``stdlib_below_level``: ``logging.Logger.debug`` when the logger is at INFO;
* ``sieve_kept`` / ``loguru_kept``: a kept line through Sieve (patcher, redaction, OTel sink to the SDK's
  ``SimpleLogRecordProcessor`` with a discarding exporter, plus a file sink to /dev/null) against plain loguru
  to the same /dev/null file sink; ``sieve_kept_console_only`` is Sieve without the OTel sink (the bridge's own
  share). A kept line is rare by design: what matters is ``loguru_kept_vs_sieve_dropped``.

    python -m bench.bench_logs [--quick]
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from collectors.logs import LogBridge, LogBridgeSettings
from pipeline.sampling.logs import LogSampler, LogSamplingSettings
from pipeline.sampling.logs.testing import FakeDecisionSource


class _Discard(LogRecordExporter):
    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _time_ns(fn: Callable[[int], None], calls: int, rounds: int) -> float:
    fn(min(calls, 1000))  # warm-up
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn(calls)
        samples.append((time.perf_counter_ns() - t0) / calls)
    return statistics.median(samples)


def run(quick: bool = False) -> dict[str, Any]:
    calls, rounds = (20_000, 5) if quick else (100_000, 7)
    kept_calls = calls // 10
    results: dict[str, float] = {}
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed in finally
    logger.remove()  # the bench owns loguru here; stderr is re-added at the end
    root = logging.getLogger()
    root_level, root_handlers = root.level, list(root.handlers)
    try:
        source = FakeDecisionSource()
        sampler = LogSampler(
            LogSamplingSettings(categories={"HOT": 0.0, "ALL": 1.0}), decisions=source, rng=random.Random(7).random
        )
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(_Discard()))
        tracer = TracerProvider().get_tracer("bench")
        file_id = logger.add(devnull, level="INFO", format="{time} {level} {name}:{line} {message}")

        # -- loguru and stdlib baselines (no bridge installed) --
        def loguru_below(k: int) -> None:
            for i in range(k):
                logger.debug("sent op={} size={}", "stream_chunk", i)

        results["loguru_below_level"] = _time_ns(loguru_below, calls, rounds)

        std = logging.getLogger("bench.stdlib")
        std.setLevel(logging.INFO)

        def stdlib_below(k: int) -> None:
            for i in range(k):
                std.debug("sent op=%s size=%d", "stream_chunk", i)

        results["stdlib_below_level"] = _time_ns(stdlib_below, calls, rounds)

        rng = random.Random(3).random
        filter_id = logger.add(devnull, level="DEBUG", filter=lambda r: rng() < 0.0, format="{message}")

        def loguru_filter(k: int) -> None:
            for i in range(k):
                logger.debug("sent op={} size={}", "stream_chunk", i)

        results["loguru_filter_dropped"] = _time_ns(loguru_filter, calls, rounds)
        logger.remove(filter_id)

        def loguru_kept(k: int) -> None:
            for i in range(k):
                logger.info("sent op={} size={}", "stream_chunk", i)

        results["loguru_kept"] = _time_ns(loguru_kept, kept_calls, rounds)

        # -- Sieve --
        bridge = LogBridge(provider, sampler, LogBridgeSettings(intercept_stdlib=False)).install()
        try:
            hot, everything = bridge.category("HOT"), bridge.category("ALL")

            def sieve_dropped(k: int) -> None:
                for i in range(k):
                    hot.debug("sent op={} size={}", "stream_chunk", i)

            results["sieve_dropped"] = _time_ns(sieve_dropped, calls, rounds)

            def sieve_in_trace(k: int) -> None:
                done = 0
                while done < k:
                    with tracer.start_as_current_span("turn") as span:
                        for i in range(100):
                            hot.debug("sent op={} size={}", "stream_chunk", i)
                    source.decide(span.get_span_context().trace_id, False, 0.1)
                    done += 100

            # The span itself is not the log line's cost: measure it alone and subtract it.
            def spans_only(k: int) -> None:
                for _ in range(k // 100):
                    with tracer.start_as_current_span("turn"):
                        pass

            in_trace = _time_ns(sieve_in_trace, calls, rounds) - _time_ns(spans_only, calls, rounds)
            results["sieve_dropped_in_trace"] = in_trace

            def sieve_kept(k: int) -> None:
                for i in range(k):
                    everything.info("sent op={} size={}", "stream_chunk", i)

            results["sieve_kept"] = _time_ns(sieve_kept, kept_calls, rounds)
        finally:
            bridge.uninstall()
        # The bridge's own share of a kept line (patcher, stamps, redaction), without the OTel SDK's.
        bridge = LogBridge(None, sampler, LogBridgeSettings(intercept_stdlib=False)).install()
        try:
            everything = bridge.category("ALL")
            results["sieve_kept_console_only"] = _time_ns(sieve_kept, kept_calls, rounds)
        finally:
            bridge.uninstall()
        logger.remove(file_id)
    finally:
        logger.add(sys.stderr)
        root.setLevel(root_level)
        root.handlers[:] = root_handlers
        devnull.close()
    out: dict[str, Any] = {k: round(v, 1) for k, v in results.items()}
    out["unit"] = "ns/call"
    out["ratios"] = {
        "sieve_dropped_vs_loguru_filter": round(results["sieve_dropped"] / results["loguru_filter_dropped"], 3),
        "sieve_dropped_vs_loguru_below_level": round(results["sieve_dropped"] / results["loguru_below_level"], 2),
        "sieve_dropped_vs_stdlib_below_level": round(results["sieve_dropped"] / results["stdlib_below_level"], 2),
        "sieve_in_trace_vs_loguru_filter": round(in_trace / results["loguru_filter_dropped"], 3),
        "sieve_kept_vs_loguru_kept": round(results["sieve_kept"] / results["loguru_kept"], 2),
        "sieve_kept_console_only_vs_loguru_kept": round(results["sieve_kept_console_only"] / results["loguru_kept"], 2),
        "loguru_kept_vs_sieve_dropped": round(results["loguru_kept"] / results["sieve_dropped"], 1),
    }
    out["stats"] = {k: v for k, v in sampler.stats().items() if k in ("seen", "kept", "dropped", "pending")}
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
