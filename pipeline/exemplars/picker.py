"""The exemplar picker: a SpanProcessor in the kept-span chain, downstream of the tail sampler's decision.

It sees exactly the spans the sampler kept (with sampling off, every span), and offers each one to the store for
every series it contributes to (``sources.SOURCES``), in the histogram bucket its duration falls in. It runs on
the sampler's worker thread, costs a few dictionary operations per span, and never raises into the pipeline.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from pipeline.exemplars.sources import SOURCES, Source
from pipeline.exemplars.store import Candidate, ExemplarStore
from pipeline.names import DURATION_BUCKETS_S


def bucket_of(value: float, bounds: Sequence[float]) -> int:
    """Index of the explicit bucket holding ``value`` (upper bounds inclusive, as Prometheus' ``le``)."""
    return bisect_left(bounds, value)


class ExemplarPicker(SpanProcessor):
    """Offers every kept span to the exemplar store for each series it is an example of."""

    def __init__(
        self,
        store: ExemplarStore,
        sources: Sequence[Source] = SOURCES,
        bounds: Sequence[float] = DURATION_BUCKETS_S,
    ) -> None:
        self.store = store
        self._table = tuple((s, s.sample_name, s.is_histogram) for s in sources)  # computed once, read per span
        self._bounds = tuple(bounds)
        self.errors_caught = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        try:
            ctx = span.context
            if ctx is None or span.start_time is None or span.end_time is None:
                return
            duration_s = max(0, span.end_time - span.start_time) / 1e9
            error = span.status.status_code is StatusCode.ERROR
            trace_id, span_id = ctx.trace_id, ctx.span_id
            timestamp_s = span.end_time / 1e9
            timed = Candidate(trace_id, span_id, duration_s, timestamp_s, error)
            counted = Candidate(trace_id, span_id, 1.0, timestamp_s, error)
            bucket = bucket_of(duration_s, self._bounds)
            offers = []
            for source, sample_name, histogram in self._table:
                labels = source.labels(span)
                if labels is not None:
                    offers.append(
                        ((sample_name, labels), bucket, timed) if histogram else ((sample_name, labels), 0, counted)
                    )
            if offers:
                self.store.offer_many(offers)
        except Exception:  # a malformed span must not cost the others their exemplars, nor raise into the sampler
            self.errors_caught += 1

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
