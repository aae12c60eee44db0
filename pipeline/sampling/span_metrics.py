"""RED metrics from every span, before sampling: calls, errors and a duration histogram per span name, kind and
status, like the Collector's ``spanmetrics`` connector but computed in-process on 100 % of spans.

Counting is plain Python (:class:`SpanCounts`, ~0.3 us a span, no SDK instrument on the hot path): the tail
sampler's worker counts the spans it drains, off the event-loop thread. The counts reach every metric reader at
collection time (:class:`SpanMetricsPublisher`): ``sieve.span.calls`` and ``sieve.span.errors`` are observable
counters over the cumulative counts, and their callback first hands the durations counted since the last
collection to the ``sieve.span.duration`` histogram - merged per series into the SDK's own aggregation
(``opentelemetry-sdk`` is pinned; a test compares the result with plain ``record()`` calls), or recorded one by one
if that aggregation is not the explicit-bucket one. Same names, labels and buckets as before; exact.

Cardinality is bounded: the first ``max_span_names`` distinct names are kept, later ones are counted as
``"other"``. Nothing here raises into the application.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from pipeline.metering import BulkMerge
from pipeline.names import DURATION_BUCKETS_S
from pipeline.names import sampling as n

DEFAULT_MAX_SPAN_NAMES = 200
_ERROR = StatusCode.ERROR
SeriesKey = tuple[str, int, StatusCode]  # (bounded name, kind value, status code)


class _Series:
    __slots__ = ("attrs", "calls", "durations", "error_attrs", "errors")

    def __init__(self, name: str, kind_name: str, code: StatusCode) -> None:
        self.attrs = {n.SPAN_NAME: name, n.SPAN_KIND: kind_name, n.STATUS_CODE: code.name}
        self.error_attrs = {n.SPAN_NAME: name, n.SPAN_KIND: kind_name}
        self.calls = 0
        self.errors = 0
        self.durations: list[float] = []  # seconds, since the last collection


class SpanCounts:
    """Cumulative calls and errors per series, and the durations not yet collected. Counting is for one thread
    (the worker); :meth:`snapshot` and :meth:`take_durations` may run on any other (a metric reader)."""

    def __init__(self, max_span_names: int = DEFAULT_MAX_SPAN_NAMES) -> None:
        self._max_names = max_span_names
        self._names: set[str] = set()
        self._series: dict[SeriesKey, _Series] = {}
        self._lock = threading.Lock()  # guards the durations lists against take_durations
        self.errors_caught = 0

    def count(self, spans: Iterable[ReadableSpan]) -> None:
        """Count ended spans (a slice of them: the lock is taken once)."""
        series = self._series
        with self._lock:
            for span in spans:
                try:
                    code = span.status.status_code
                    name = span.name
                    key = (name, span.kind.value, code)
                    s = series.get(key)
                    if s is None:
                        s = self._new_series(span, code)
                    s.calls += 1
                    if code is _ERROR:
                        s.errors += 1
                    start, end = span.start_time, span.end_time
                    if start is not None and end is not None:
                        s.durations.append(max(0, end - start) / 1e9)
                except Exception:
                    self.errors_caught += 1

    def _new_series(self, span: ReadableSpan, code: StatusCode) -> _Series:
        name, kind = span.name, span.kind
        if name in self._names or len(self._names) < self._max_names:
            self._names.add(name)
            bounded = name
        else:
            bounded = n.OTHER_SPAN_NAME
        shared = (bounded, kind.value, code)
        s = self._series.get(shared)
        if s is None:
            s = self._series[shared] = _Series(bounded, kind.name, code)
        self._series[(name, kind.value, code)] = s  # an overflowing name maps straight onto "other"
        return s

    def series(self) -> list[_Series]:
        """Distinct series (an overflowing name and "other" are one)."""
        with self._lock:
            return list({id(s): s for s in self._series.values()}.values())

    def take_durations(self) -> list[tuple[dict[str, Any], list[float]]]:
        """The durations counted since the last call, per series attributes."""
        out = []
        with self._lock:
            for s in {id(s): s for s in self._series.values()}.values():
                if s.durations:
                    out.append((s.attrs, s.durations))
                    s.durations = []
        return out


class SpanMetricsPublisher:
    """Registers the three span metrics on ``meter_provider``; they read ``counts`` at collection time.

    ``before_collect`` (the tail sampler's "count what is queued now") runs first, so a scrape right after a span
    ended already counts it, as when span metrics were recorded in ``on_end``.
    """

    def __init__(
        self, counts: SpanCounts, meter_provider: MeterProvider, before_collect: Callable[[], None] | None = None
    ) -> None:
        self.counts = counts
        self._before_collect = before_collect
        meter = meter_provider.get_meter("pipeline.sampling.span_metrics")
        histogram = meter.create_histogram(
            n.SPAN_DURATION.name,
            unit=n.SPAN_DURATION.unit,
            description=n.SPAN_DURATION.description,
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S),
        )
        self._bulk = BulkMerge(histogram, DURATION_BUCKETS_S)
        self._flush_lock = threading.Lock()
        meter.create_observable_counter(
            n.SPAN_CALLS.name, [self._calls], unit=n.SPAN_CALLS.unit, description=n.SPAN_CALLS.description
        )
        meter.create_observable_counter(
            n.SPAN_ERRORS.name, [self._errors], unit=n.SPAN_ERRORS.unit, description=n.SPAN_ERRORS.description
        )

    def flush(self) -> None:
        """Hand the durations counted so far to the histogram (every reader sees them at its next collection)."""
        with self._flush_lock:
            for attrs, values in self.counts.take_durations():
                try:
                    self._bulk.add(attrs, values)
                except Exception:
                    self.counts.errors_caught += 1

    def _calls(self, options: CallbackOptions) -> Iterable[Observation]:
        # Called at the start of each reader's collection, before instruments are read: the durations join the
        # histogram now, so this collection already has them.
        if self._before_collect is not None:
            try:
                self._before_collect()
            except Exception:
                self.counts.errors_caught += 1
        self.flush()
        return [Observation(s.calls, s.attrs) for s in self.counts.series()]

    def _errors(self, options: CallbackOptions) -> Iterable[Observation]:
        by_name: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        for s in self.counts.series():
            if s.errors:
                key = (s.error_attrs[n.SPAN_NAME], s.error_attrs[n.SPAN_KIND])
                total, attrs = by_name.get(key, (0, s.error_attrs))
                by_name[key] = (total + s.errors, attrs)
        return [Observation(total, attrs) for total, attrs in by_name.values()]


class SpanMetricsProcessor(SpanProcessor):
    """Span metrics as a processor of their own (for a pipeline without the tail sampler's worker): counts in
    ``on_end`` with plain Python and publishes at collection time. The tail sampler counts in its worker instead
    (``TailSamplingProcessor(..., span_metrics=...)``)."""

    def __init__(self, meter_provider: MeterProvider, *, max_span_names: int = DEFAULT_MAX_SPAN_NAMES) -> None:
        self.counts = SpanCounts(max_span_names)
        self.publisher = SpanMetricsPublisher(self.counts, meter_provider)

    @property
    def errors_caught(self) -> int:
        return self.counts.errors_caught

    def on_start(self, span: Span, parent_context: object = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.counts.count((span,))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
