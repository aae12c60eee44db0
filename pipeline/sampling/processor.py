"""The SDK-facing span pipeline: a thin thread shell around span metrics and the pure
:class:`~pipeline.sampling.buffer.TraceBuffer`.

``on_end`` appends the span to a bounded deque and returns (O(1), no lock, never raises; a full queue drops the
span and counts it as ``shed{reason=queue_full}``). One worker thread wakes every ``tick_interval`` (or when the
queue passes a batch) and drains the queue in slices of :data:`SLICE_SPANS`; after :data:`YIELD_AFTER_S` of work it
hands the GIL back between slices while it keeps up (a long queue is drained without yielding, so spans are not
shed). Per slice it counts span metrics (:class:`~pipeline.sampling.span_metrics.SpanCounts`, published at
collection time) and feeds the spans and "now" to the buffer; then it decides what is ready and forwards kept
spans - stamped with their probability, adjusted count, reason and ``ot=th`` - to the downstream processor (e.g.
the SDK's ``SynchronousMultiSpanProcessor`` holding ``BatchSpanProcessor``s). Dropped spans are released.

With ``config=None`` tail sampling is off: the worker still counts span metrics and forwards every span, so the
RED metrics the SLO rules read never depend on sampling being on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from pipeline.names.sampling import ErrorSite, Outcome, Reason, ShedReason, Trigger
from pipeline.sampling.boost import ErrorSignal
from pipeline.sampling.buffer import Release, TraceBuffer
from pipeline.sampling.config import TailSamplingConfig
from pipeline.sampling.counting import stamp
from pipeline.sampling.engine import EffectiveRate
from pipeline.sampling.metrics import NoopSamplerMetrics, SamplerGauges, SamplerMetrics
from pipeline.sampling.span_metrics import DEFAULT_MAX_SPAN_NAMES, SpanCounts, SpanMetricsPublisher

logger = logging.getLogger(__name__)

# (trace_id, keep, probability, reason): how other parts (the log sampler) learn a trace's fate.
DecisionListener = Callable[[int, bool, float, str], None]
# The same, a cycle's decisions at once: [(trace_id, keep, probability, reason), ...].
BatchListener = Callable[[Sequence[tuple[int, bool, float, str]]], None]
# Sees every ended span, a slice at a time, on the worker thread before any sampling (the demo's span statistics).
SpanObserver = Callable[[Sequence[ReadableSpan]], None]
SLICE_SPANS = 256  # spans the worker takes at once
YIELD_AFTER_S = 0.002  # worker time between voluntary GIL hand-offs (the interpreter forces one every 5 ms)
_WAKE_BATCH = 512  # wake the worker early once this many spans wait
_PASS_THROUGH_QUEUE = 20_000
_JOIN_TIMEOUT_S = 5.0
_COLLECT_WAIT_S = 1.0  # a scrape waits at most this long for the worker's cycle


class TailSamplingProcessor(SpanProcessor):
    """Counts span metrics and, unless ``config`` is None, buffers ended spans per trace, decides per trace with
    the configured policies and forwards kept spans.

    ``span_metrics``: count RED span metrics in the worker and publish them on ``meter_provider`` (needs one).
    ``clock`` (seconds, monotonic) is the only time source; pass a fake one in tests.
    """

    def __init__(
        self,
        downstream: SpanProcessor,
        config: TailSamplingConfig | None,
        *,
        meter_provider: MeterProvider | None = None,
        span_metrics: bool = False,
        max_span_names: int = DEFAULT_MAX_SPAN_NAMES,
        observers: Sequence[SpanObserver] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._downstream = downstream
        self._observers = tuple(observers)
        self._config = config
        self._clock = clock
        self._buffer = TraceBuffer(config) if config is not None else None
        self._signal = self._buffer.engine.error_signal if self._buffer is not None else ErrorSignal()
        self._queue: deque[ReadableSpan] = deque()
        self._max_queue = config.max_queue_spans if config is not None else _PASS_THROUGH_QUEUE
        self._wake_at = min(_WAKE_BATCH, max(1, self._max_queue // 2))
        self._yield_below = max(_WAKE_BATCH, self._max_queue // 8)
        self._tick_s = config.tick_interval_s if config is not None else 0.1
        self._queue_full = 0
        self._internal_errors = 0
        self._lock = threading.Lock()  # owns the buffer: worker, force_flush, shutdown, stats
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._is_shutdown = False
        self._metrics: NoopSamplerMetrics = (
            SamplerMetrics(meter_provider, self._gauges) if meter_provider is not None else NoopSamplerMetrics()
        )
        self.span_counts: SpanCounts | None = None
        if span_metrics and meter_provider is not None:
            self.span_counts = SpanCounts(max_span_names)
            SpanMetricsPublisher(self.span_counts, meter_provider, before_collect=self._drain_for_metrics)
        self._listeners: list[DecisionListener] = []
        self._batch_listeners: list[BatchListener] = []
        self._worker = threading.Thread(target=self._run, name="sieve-tail-sampler", daemon=True)
        self._worker.start()

    @property
    def error_signal(self) -> ErrorSignal:
        """The error-rate signal the sampler keeps current; the log sampler reads the same object."""
        return self._signal

    @property
    def config(self) -> TailSamplingConfig | None:
        return self._config

    @property
    def sampling(self) -> bool:
        """False when tail sampling is off (every span forwarded, span metrics still counted)."""
        return self._buffer is not None

    # -- SpanProcessor -------------------------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        # The event loop's only work per span: one length check and an append (deque operations are atomic).
        try:
            if self._is_shutdown:
                return
            queue = self._queue
            size = len(queue)
            if size >= self._max_queue:
                self._queue_full += 1  # published as sieve.sampling.spans.shed{shed_reason="queue_full"}
                return
            queue.append(span)
            if size == self._wake_at:
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
            drop = self._config.drop_pending_traces_on_shutdown if self._config is not None else False
            self._cycle(flush=True, drop=drop)
        try:
            self._downstream.shutdown()
        except Exception:
            self._internal_errors += 1

    def _drain_for_metrics(self) -> None:
        """A metric reader is collecting: run a cycle now (if the worker is not in one) so what is queued is
        counted - span metrics stay exact at every scrape, not one tick behind."""
        if self._queue and self._lock.acquire(timeout=_COLLECT_WAIT_S):
            try:
                self._cycle()
            finally:
                self._lock.release()

    # -- worker --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._tick_s)
            self._wake.clear()
            if self._stopping.is_set():
                break
            with self._lock:
                self._cycle()

    def _cycle(self, *, flush: bool = False, drop: bool = False) -> None:
        """One pass: drain the queue in slices into span metrics and the buffer, decide what is ready, forward.
        Caller holds the lock."""
        try:
            now = self._clock()
            buffer = self._buffer
            queue = self._queue
            if buffer is not None:
                buffer.update_stress(now, 100.0 * len(queue) / self._max_queue)
            releases: list[Release] = []
            yield_at = time.perf_counter() + YIELD_AFTER_S
            remaining = len(queue)  # only what is there now: the application keeps appending
            while remaining > 0:
                take = min(remaining, SLICE_SPANS)
                remaining -= take
                spans = [queue.popleft() for _ in range(take)]
                if self.span_counts is not None:
                    self.span_counts.count(spans)
                for observe in self._observers:
                    try:
                        observe(spans)
                    except Exception:  # an observer's failure costs the spans nothing
                        self._internal_errors += 1
                        self._metrics.internal_error(ErrorSite.OBSERVER)
                if buffer is None:
                    self._pass_through(spans)
                else:
                    self._intake(buffer, spans, now, releases)
                if remaining > 0 and time.perf_counter() >= yield_at and len(queue) < self._yield_below:
                    # Keeping up: after YIELD_AFTER_S of work hand the GIL back, so the event loop never waits
                    # for a whole backlog. Falling behind (a long queue): no yields, catch up before spans are shed.
                    time.sleep(0)
                    yield_at = time.perf_counter() + YIELD_AFTER_S
            if buffer is not None:
                releases.extend(buffer.flush(now, drop=drop) if flush else buffer.expire(now))
                self._forward(releases)
                self._metrics.publish(buffer.stats, self._queue_full)
            else:
                self._metrics.publish(None, self._queue_full)
        except Exception:
            self._internal_errors += 1
            self._metrics.internal_error(ErrorSite.WORKER)
            logger.exception("tail sampler worker cycle failed")

    def _intake(self, buffer: TraceBuffer, spans: list[ReadableSpan], now: float, releases: list[Release]) -> None:
        add = buffer.add
        for span in spans:
            try:
                out = add(span, now)
                if out:
                    releases.extend(out)
            except Exception:  # one malformed span must not cost the others their decision
                self._internal_errors += 1
                self._metrics.internal_error(ErrorSite.INTAKE)

    def _pass_through(self, spans: list[ReadableSpan]) -> None:
        on_end = self._downstream.on_end
        for span in spans:
            try:
                on_end(span)
            except Exception:
                self._internal_errors += 1
                self._metrics.internal_error(ErrorSite.DOWNSTREAM)

    def add_decision_listener(self, listener: DecisionListener) -> None:
        """Call ``listener(trace_id, keep, probability, reason)`` once per decided trace, from the worker thread.

        The log sampler uses it so a trace's log records follow the trace's fate. A listener must be quick and
        must not raise (an exception is counted and otherwise ignored). A listener object with an
        ``on_decisions(batch)`` method gets each cycle's decisions in one call instead.
        """
        batch = getattr(listener, "__self__", None)
        on_decisions = getattr(batch, "on_decisions", None)
        if callable(on_decisions):
            self._batch_listeners.append(on_decisions)
        else:
            self._listeners.append(listener)

    def _forward(self, releases: list[Release]) -> None:
        downstream = self._downstream
        decided: list[tuple[int, bool, float, str]] = []
        for release in releases:
            verdict = release.verdict
            if not release.late:
                if release.trigger is not Trigger.STRESS_RELIEF:
                    self._metrics.decision_latency(release.age_s)
                decided.append((release.trace_id, verdict.keep, verdict.probability, verdict.reason))
            if not verdict.keep:
                continue
            marks = verdict.marks  # the N+1 detector's attributes for some of the kept copies (Verdict.marks)
            for span in release.spans:
                try:
                    downstream.on_end(
                        stamp(span, verdict.probability, verdict.reason, cached=release.late, marks=marks)
                    )
                except Exception:
                    self._internal_errors += 1
                    self._metrics.internal_error(ErrorSite.DOWNSTREAM)
        if not decided:
            return
        for batch_listener in self._batch_listeners:
            try:
                batch_listener(decided)
            except Exception:
                self._internal_errors += 1
                self._metrics.internal_error(ErrorSite.LISTENER)
        for listener in self._listeners:
            for trace_id, keep, probability, reason in decided:
                try:
                    listener(trace_id, keep, probability, reason)
                except Exception:
                    self._internal_errors += 1
                    self._metrics.internal_error(ErrorSite.LISTENER)

    # -- reading -------------------------------------------------------------------------------------------

    def _gauges(self) -> SamplerGauges:
        buffer = self._buffer
        return SamplerGauges(
            traces=float(buffer.trace_count) if buffer is not None else 0.0,
            spans=float(buffer.span_count) if buffer is not None else 0.0,
            boost=self.error_signal.level(self._clock()),
            stress=1.0 if buffer is not None and buffer.stress.active else 0.0,
        )

    def effective_rates(self) -> dict[str, EffectiveRate]:
        """Per key ``"service/operation"``: base keep probability, boost, budget scale and the effective
        probability of an ordinary trace (e.g. base 0.1 -> effective 0.3 while the key errs)."""
        if self._buffer is None:
            return {}
        with self._lock:
            return self._buffer.engine.effective_rates(self._clock())

    def stats(self) -> dict[str, Any]:
        """A plain snapshot: seen / kept / dropped by reason, bounds hit, late and shed spans, boost level."""
        now = self._clock()
        if self._buffer is None:
            return {
                "sampling": False,
                "spans_forwarded": None,
                "shed_spans": {ShedReason.QUEUE_FULL.value: self._queue_full},
                "queued_spans": len(self._queue),
                "boost_level": 1.0,
                "internal_errors": self._internal_errors,
            }
        with self._lock:
            buffer = self._buffer
            s = buffer.stats
            kept_by_policy: dict[str, int] = {}
            dropped_by_reason: dict[str, int] = {}
            for (outcome, reason), count in s.traces_decided.items():
                if outcome is Outcome.SAMPLED:
                    kept_by_policy[str(reason)] = kept_by_policy.get(str(reason), 0) + count
                else:
                    key = Outcome.NOT_SAMPLED.value if reason == Reason.NONE else str(reason)
                    dropped_by_reason[key] = dropped_by_reason.get(key, 0) + count
            spans_kept = sum(c for (o, _), c in s.spans_decided.items() if o is Outcome.SAMPLED)
            spans_released = sum(c for (o, _), c in s.spans_decided.items() if o is not Outcome.SAMPLED)
            shed_spans = {r.value: c for r, c in s.shed.items()}
            shed_spans[ShedReason.QUEUE_FULL.value] = self._queue_full
            engine = buffer.engine
            return {
                "sampling": True,
                "traces_seen": s.traces_received,
                "traces_kept": sum(kept_by_policy.values()),
                "traces_dropped": sum(dropped_by_reason.values()),
                "spans_seen": s.spans_received + self._queue_full + len(self._queue),
                "spans_kept": spans_kept,
                "spans_dropped": spans_released + self._queue_full,
                "kept_by_policy": dict(sorted(kept_by_policy.items())),
                "dropped_by_reason": dict(sorted(dropped_by_reason.items())),
                "policy_votes": {f"{p}/{v}": c for (p, v), c in sorted(engine.policy_votes.items())},
                "decided_early": {b.value: c for b, c in s.early.items()},
                "triggers": {t.value: c for t, c in s.triggers.items()},
                "late_spans": {o.value: c for o, c in s.late.items()},
                "shed_spans": shed_spans,
                "buffered_traces": buffer.trace_count,
                "buffered_spans": buffer.span_count,
                "queued_spans": len(self._queue),
                "boost_level": round(self.error_signal.level(now), 3),
                "boost_by_key": self.error_signal.snapshot(now),
                "effective_rates": engine.effective_rates(now),
                "budget": {
                    "traces_per_second": engine.budget.settings.traces_per_second if engine.budget else 0.0,
                    "demand_per_second": {k.value: round(v, 2) for k, v in engine.budget.demand(now).items()}
                    if engine.budget
                    else {},
                    "scales": {k.value: round(v, 4) for k, v in engine.budget_scales(now).items()},
                },
                "stress_active": buffer.stress.active,
                "stress_activations": buffer.stress.activations,
                "policy_errors": dict(engine.policy_errors),
                "internal_errors": self._internal_errors,
            }


def build_span_pipeline(
    kept: SpanProcessor,
    config: TailSamplingConfig | None,
    meter_provider: MeterProvider,
    *,
    observers: Sequence[SpanObserver] = (),
    clock: Callable[[], float] = time.monotonic,
) -> TailSamplingProcessor:
    """What the composition root adds to the ``TracerProvider``: span metrics (RED, from 100 % of spans, counted
    off the event loop), ``observers`` called with every span on the same worker thread (before sampling), and,
    unless ``config`` is None, the tail sampler forwarding kept spans to ``kept``."""
    return TailSamplingProcessor(
        kept, config, meter_provider=meter_provider, span_metrics=True, observers=observers, clock=clock
    )
