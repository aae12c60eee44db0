"""The SDK-facing tail sampler: a thin thread shell around the pure :class:`~pipeline.sampling.buffer.TraceBuffer`.

``on_end`` appends the span to a bounded deque and returns (O(1), no lock, never raises; a full queue drops the
span and counts it). One worker thread wakes every ``tick_interval`` (or when the queue fills past a batch),
feeds the spans and "now" to the buffer, decides what is ready and forwards kept spans - stamped with their
probability, adjusted count, reason and ``ot=th`` - to the downstream processor (e.g. the SDK's
``SynchronousMultiSpanProcessor`` holding ``BatchSpanProcessor``s). Dropped spans are released.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from pipeline.sampling.boost import ErrorSignal
from pipeline.sampling.buffer import Release, TraceBuffer
from pipeline.sampling.config import TailSamplingConfig
from pipeline.sampling.counting import stamp
from pipeline.sampling.decision import NOT_SAMPLED_REASON, Outcome
from pipeline.sampling.metrics import NoopSamplerMetrics, SamplerMetrics

logger = logging.getLogger(__name__)

QUEUE_FULL = "queue_full"
# (trace_id, keep, probability, reason): how other parts (the log sampler) learn a trace's fate.
DecisionListener = Callable[[int, bool, float, str], None]
_WAKE_BATCH = 512  # wake the worker early once this many spans wait
_JOIN_TIMEOUT_S = 5.0


class TailSamplingProcessor(SpanProcessor):
    """Buffers ended spans per trace, decides per trace with the configured policies, forwards kept spans.

    ``clock`` (seconds, monotonic) is the only time source; pass a fake one in tests.
    """

    def __init__(
        self,
        downstream: SpanProcessor,
        config: TailSamplingConfig,
        *,
        meter_provider: MeterProvider | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._downstream = downstream
        self._config = config
        self._clock = clock
        self._buffer = TraceBuffer(config)
        self._queue: deque[ReadableSpan] = deque()
        self._max_queue = config.max_queue_spans
        self._wake_at = min(_WAKE_BATCH, max(1, config.max_queue_spans // 2))
        self._queue_full = 0
        self._internal_errors = 0
        self._lock = threading.Lock()  # owns the buffer: worker, force_flush, shutdown, stats
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._is_shutdown = False
        self._metrics: NoopSamplerMetrics = (
            SamplerMetrics(meter_provider, self._gauges) if meter_provider is not None else NoopSamplerMetrics()
        )
        self._listeners: list[DecisionListener] = []
        self._worker = threading.Thread(target=self._run, name="sieve-tail-sampler", daemon=True)
        self._worker.start()

    @property
    def error_signal(self) -> ErrorSignal:
        """The error-rate signal the sampler keeps current; the log sampler reads the same object."""
        return self._buffer.engine.error_signal

    @property
    def config(self) -> TailSamplingConfig:
        return self._config

    # -- SpanProcessor -------------------------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if self._is_shutdown:
                return
            queue = self._queue
            if len(queue) >= self._max_queue:
                self._queue_full += 1
                return
            queue.append(span)
            if len(queue) >= self._wake_at:
                self._wake.set()
        except Exception:
            self._internal_errors += 1

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Decide and forward everything held now, then flush downstream within what is left of the deadline."""
        deadline = time.monotonic() + timeout_millis / 1000
        if not self._lock.acquire(timeout=max(0.0, timeout_millis / 1000)):
            return False
        try:
            self._cycle(flush=True)
        finally:
            self._lock.release()
        remaining_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
        try:
            return bool(self._downstream.force_flush(remaining_ms))
        except Exception:
            self._internal_errors += 1
            return False

    def shutdown(self) -> None:
        """Stop the worker, decide (or drop, if configured) what is held, forward it, shut downstream down."""
        if self._is_shutdown:
            return
        self._is_shutdown = True
        self._stopping.set()
        self._wake.set()
        self._worker.join(_JOIN_TIMEOUT_S)
        with self._lock:
            self._cycle(flush=True, drop=self._config.drop_pending_traces_on_shutdown)
        try:
            self._downstream.shutdown()
        except Exception:
            self._internal_errors += 1

    # -- worker --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        tick = self._config.tick_interval_s
        while not self._stopping.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            if self._stopping.is_set():
                break
            with self._lock:
                self._cycle()

    def _cycle(self, *, flush: bool = False, drop: bool = False) -> None:
        """One pass: drain the intake queue into the buffer, decide what is ready, forward. Caller holds the lock."""
        try:
            now = self._clock()
            buffer = self._buffer
            queue = self._queue
            buffer.update_stress(now, 100.0 * len(queue) / self._max_queue)
            releases: list[Release] = []
            for _ in range(len(queue)):
                try:
                    releases.extend(buffer.add(queue.popleft(), now))
                except Exception:  # one malformed span must not cost the others their decision
                    self._internal_errors += 1
                    self._metrics.internal_error("intake")
            releases.extend(buffer.flush(now, drop=drop) if flush else buffer.expire(now))
            self._forward(releases)
            self._metrics.publish(buffer.stats)
        except Exception:
            self._internal_errors += 1
            self._metrics.internal_error("worker")
            logger.exception("tail sampler worker cycle failed")

    def add_decision_listener(self, listener: DecisionListener) -> None:
        """Call ``listener(trace_id, keep, probability, reason)`` once per decided trace, from the worker thread.

        The log sampler uses it so a trace's log records follow the trace's fate. A listener must be quick and
        must not raise (an exception is counted and otherwise ignored).
        """
        self._listeners.append(listener)

    def _forward(self, releases: list[Release]) -> None:
        downstream = self._downstream
        for release in releases:
            if not release.late and release.trigger != "stress_relief":
                self._metrics.decision_latency(release.age_s)
            verdict = release.verdict
            if not release.late:
                for listener in self._listeners:
                    try:
                        listener(release.trace_id, verdict.keep, verdict.probability, verdict.reason)
                    except Exception:
                        self._internal_errors += 1
                        self._metrics.internal_error("listener")
            if not verdict.keep:
                continue
            for span in release.spans:
                try:
                    downstream.on_end(stamp(span, verdict.probability, verdict.reason, cached=release.late))
                except Exception:
                    self._internal_errors += 1
                    self._metrics.internal_error("downstream")

    # -- reading -------------------------------------------------------------------------------------------

    def _gauges(self) -> dict[str, float]:
        buffer = self._buffer
        return {
            "traces": float(buffer.trace_count),
            "spans": float(buffer.span_count),
            "boost": self.error_signal.level(self._clock()),
            "stress": 1.0 if buffer.stress.active else 0.0,
        }

    def stats(self) -> dict[str, Any]:
        """A plain snapshot: seen / kept / dropped by reason, bounds hit, late and shed spans, boost level."""
        with self._lock:
            buffer = self._buffer
            s = buffer.stats
            kept_by_policy: dict[str, int] = {}
            dropped_by_reason: dict[str, int] = {}
            for (outcome, reason), count in s.traces_decided.items():
                if outcome is Outcome.SAMPLED:
                    kept_by_policy[reason] = kept_by_policy.get(reason, 0) + count
                else:
                    key = "not_sampled" if reason == NOT_SAMPLED_REASON else reason
                    dropped_by_reason[key] = dropped_by_reason.get(key, 0) + count
            spans_kept = sum(c for (o, _), c in s.spans_decided.items() if o is Outcome.SAMPLED)
            spans_released = sum(c for (o, _), c in s.spans_decided.items() if o is not Outcome.SAMPLED)
            now = self._clock()
            return {
                "traces_seen": s.traces_received,
                "traces_kept": sum(kept_by_policy.values()),
                "traces_dropped": sum(dropped_by_reason.values()),
                "spans_seen": s.spans_received + self._queue_full + len(self._queue),
                "spans_kept": spans_kept,
                "spans_dropped": spans_released + self._queue_full,
                "kept_by_policy": dict(sorted(kept_by_policy.items())),
                "dropped_by_reason": dict(sorted(dropped_by_reason.items())),
                "decided_early": dict(s.early),
                "triggers": dict(s.triggers),
                "late_spans": {o.value: c for o, c in s.late.items()},
                "shed_spans": {**dict(s.shed), QUEUE_FULL: self._queue_full},
                "buffered_traces": buffer.trace_count,
                "buffered_spans": buffer.span_count,
                "queued_spans": len(self._queue),
                "boost_level": round(self.error_signal.level(now), 3),
                "boost_by_key": self.error_signal.snapshot(now),
                "stress_active": buffer.stress.active,
                "stress_activations": buffer.stress.activations,
                "policy_errors": dict(buffer.engine.policy_errors),
                "internal_errors": self._internal_errors,
            }
