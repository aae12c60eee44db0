"""The tail sampler's self-metrics, and a no-op twin for when no MeterProvider is given.

Counters are published once per worker tick as deltas of the buffer's plain counters, so the hot path never
touches an instrument (the Collector learned this the hard way: contrib PR #41888). Every drop is on /metrics:
spans shed by a full intake queue (``shed_reason=queue_full``, counted on the application thread) or by stress
relief, traces decided early by a bound (``decided_early{bound}``, ``maximum_trace_size_bytes`` included), not
sampled (``traces.decided{decision, policy}``, ``policy=budget`` for the kept-volume budget), late spans. Names
come from :mod:`pipeline.names.sampling`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import NamedTuple

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from pipeline import metering
from pipeline.names import sampling as n
from pipeline.names.sampling import ErrorSite, ShedReason
from pipeline.sampling.buffer import BufferStats


class SamplerGauges(NamedTuple):
    """The sampler's current levels, read at collection time."""

    traces: float  # traces buffered
    spans: float  # spans buffered
    boost: float  # the overall error-boost factor
    stress: float  # 1.0 while stress relief is on


Gauges = Callable[[], SamplerGauges]


class NoopSamplerMetrics:
    """Same interface, records nothing."""

    def publish(self, stats: BufferStats | None, queue_full: int = 0) -> None:
        pass

    def decision_latency(self, age_s: float) -> None:
        pass

    def internal_error(self, site: ErrorSite) -> None:
        pass


class SamplerMetrics(NoopSamplerMetrics):
    """Instruments on a meter from ``meter_provider``; gauges read ``gauges()`` at collection time."""

    def __init__(self, meter_provider: MeterProvider, gauges: Gauges) -> None:
        meter = meter_provider.get_meter("pipeline.sampling")
        self._gauges = gauges

        self._traces_received = metering.counter(meter, n.TRACES_RECEIVED)
        self._traces_decided = metering.counter(meter, n.TRACES_DECIDED)
        self._spans_received = metering.counter(meter, n.SPANS_RECEIVED)
        self._spans_decided = metering.counter(meter, n.SPANS_DECIDED)
        self._early = metering.counter(meter, n.TRACES_EARLY)
        self._late = metering.counter(meter, n.SPANS_LATE)
        self._shed = metering.counter(meter, n.SPANS_SHED)
        self._errors = metering.counter(meter, n.INTERNAL_ERRORS)
        self._latency = metering.histogram(meter, n.DECISION_LATENCY)
        metering.observable_gauge(meter, n.BUFFER_TRACES, self._observer(lambda g: g.traces))
        metering.observable_gauge(meter, n.BUFFER_SPANS, self._observer(lambda g: g.spans))
        metering.observable_gauge(meter, n.BOOST_LEVEL, self._observer(lambda g: g.boost))
        metering.observable_gauge(meter, n.STRESS_ACTIVE, self._observer(lambda g: g.stress))
        self._last = BufferStats()
        self._last_queue_full = 0

    def _observer(self, read: Callable[[SamplerGauges], float]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            try:
                return [Observation(read(self._gauges()))]
            except Exception:
                return []

        return observe

    def publish(self, stats: BufferStats | None, queue_full: int = 0) -> None:
        if queue_full > self._last_queue_full:
            self._shed.add(queue_full - self._last_queue_full, {n.SHED_REASON: ShedReason.QUEUE_FULL.value})
            self._last_queue_full = queue_full
        if stats is None:
            return
        last = self._last
        if stats.traces_received > last.traces_received:
            self._traces_received.add(stats.traces_received - last.traces_received)
        if stats.spans_received > last.spans_received:
            self._spans_received.add(stats.spans_received - last.spans_received)
        # Label values as plain strings: the enums' values, exactly as before they were enums.
        for (outcome, reason), delta in (stats.traces_decided - last.traces_decided).items():
            self._traces_decided.add(delta, {n.DECISION: outcome.value, n.POLICY: str(reason)})
        for (outcome, reason), delta in (stats.spans_decided - last.spans_decided).items():
            self._spans_decided.add(delta, {n.DECISION: outcome.value, n.POLICY: str(reason)})
        for bound, delta in (stats.early - last.early).items():
            self._early.add(delta, {n.BOUND: bound.value})
        for outcome, delta in (stats.late - last.late).items():
            self._late.add(delta, {n.DECISION: outcome.value})
        for shed_reason, delta in (stats.shed - last.shed).items():
            self._shed.add(delta, {n.SHED_REASON: shed_reason.value})
        self._last = BufferStats(
            traces_received=stats.traces_received,
            spans_received=stats.spans_received,
            traces_decided=Counter(stats.traces_decided),
            spans_decided=Counter(stats.spans_decided),
            early=Counter(stats.early),
            late=Counter(stats.late),
            shed=Counter(stats.shed),
        )

    def decision_latency(self, age_s: float) -> None:
        self._latency.record(age_s)

    def internal_error(self, site: ErrorSite) -> None:
        self._errors.add(1, {n.ERROR_SITE: site.value})
