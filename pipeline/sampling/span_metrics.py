"""RED metrics from every span, before sampling: calls, errors and a duration histogram per span name, kind and
status, like the Collector's ``spanmetrics`` connector but computed in-process on 100 % of spans.

Cardinality is bounded: the first ``max_span_names`` distinct names are kept, later ones are counted as
``"other"``. The processor never raises into the application.
"""

from __future__ import annotations

import threading

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import Attributes

from pipeline.names import DURATION_BUCKETS_S
from pipeline.names import sampling as n

DEFAULT_MAX_SPAN_NAMES = 200


class SpanMetricsProcessor(SpanProcessor):
    """Records ``sieve.span.calls``, ``sieve.span.errors`` and ``sieve.span.duration`` (seconds) on ``on_end``."""

    def __init__(self, meter_provider: MeterProvider, *, max_span_names: int = DEFAULT_MAX_SPAN_NAMES) -> None:
        meter = meter_provider.get_meter("pipeline.sampling.span_metrics")
        self._calls = meter.create_counter(n.SPAN_CALLS.name, n.SPAN_CALLS.unit, n.SPAN_CALLS.description)
        self._errors = meter.create_counter(n.SPAN_ERRORS.name, n.SPAN_ERRORS.unit, n.SPAN_ERRORS.description)
        self._duration = meter.create_histogram(
            n.SPAN_DURATION.name,
            unit=n.SPAN_DURATION.unit,
            description=n.SPAN_DURATION.description,
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S),
        )
        self._max_names = max_span_names
        self._names: set[str] = set()
        self._attrs: dict[tuple[str, int, StatusCode], Attributes] = {}  # reuse label dicts: no per-span alloc
        self._lock = threading.Lock()
        self.errors_caught = 0

    def _name(self, name: str) -> str:
        if name in self._names:
            return name
        with self._lock:
            if len(self._names) < self._max_names:
                self._names.add(name)
                return name
        return n.OTHER_SPAN_NAME

    def on_start(self, span: Span, parent_context: object = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        try:
            name = self._name(span.name)
            code = span.status.status_code
            key = (name, span.kind.value, code)
            attrs = self._attrs.get(key)
            if attrs is None:
                attrs = {n.SPAN_NAME: name, n.SPAN_KIND: span.kind.name, n.STATUS_CODE: code.name}
                self._attrs[key] = attrs
            self._calls.add(1, attrs)
            if code is StatusCode.ERROR:
                self._errors.add(1, {n.SPAN_NAME: name, n.SPAN_KIND: span.kind.name})
            if span.start_time is not None and span.end_time is not None:
                self._duration.record(max(0, span.end_time - span.start_time) / 1e9, attrs)
        except Exception:
            self.errors_caught += 1

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
