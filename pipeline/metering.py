"""Histograms that cost the application's thread a list append: values reach the SDK at collection time.

An SDK ``histogram.record(value, attributes)`` costs several microseconds on the calling thread (attribute hashing,
a lock, a bucket search, per reader). A WebSocket turn records a few dozen of them on the event loop. A
:class:`DeferredHistogram` keeps the values per label set in a plain list instead, and hands them to the SDK's own
histogram when a metric reader collects (a callback that runs before the reader reads its instruments), merged
per series (:class:`BulkMerge`): same metric, same buckets, same values, exact, and every reader sees them.

If nothing collects for a long time the values are merged on the recording thread every ``MAX_PENDING`` values
per series, so memory stays bounded.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from pipeline.names.spec import MetricSpec

MAX_PENDING = 4096  # values per series before they are merged where they were recorded


class BulkMerge:
    """Hands a series' values to an SDK histogram: one merge per series and collection instead of a ``record()``
    per value. Falls back to ``record()`` when the SDK's aggregation is not the one it knows (the SDK is pinned;
    a test compares the result with plain ``record()`` calls)."""

    def __init__(self, histogram: Any, boundaries: Sequence[float]) -> None:
        self._histogram = histogram
        self._boundaries = tuple(float(b) for b in boundaries)
        self._seen: set[tuple[tuple[str, Any], ...]] = set()
        self.fast = True

    def _aggregations(self, attrs: dict[str, Any]) -> list[Any] | None:
        try:
            from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes
            from opentelemetry.sdk.metrics._internal.aggregation import _ExplicitBucketHistogramAggregation

            found = []
            storages = self._histogram._measurement_consumer._reader_storages.values()
            for storage in storages:
                for match in storage._instrument_view_instrument_matches.get(self._histogram, ()):
                    keys = match._view._attribute_keys
                    filtered = attrs if keys is None else {k: v for k, v in attrs.items() if k in keys}
                    agg = match._attributes_aggregation.get(_hash_attributes(filtered))
                    if not isinstance(agg, _ExplicitBucketHistogramAggregation):
                        return None
                    if agg._boundaries != self._boundaries:
                        return None
                    found.append(agg)
            return found
        except Exception:
            return None

    def add(self, attrs: dict[str, Any], values: list[float]) -> None:
        key = tuple(sorted(attrs.items()))
        if key not in self._seen:
            self._histogram.record(values[0], attrs)  # creates the series in every reader
            self._seen.add(key)
            values = values[1:]
            if not values:
                return
        aggregations = self._aggregations(attrs) if self.fast else None
        if not aggregations:
            self.fast = aggregations is not None and self.fast
            for value in values:
                self._histogram.record(value, attrs)
            return
        counts = [0] * (len(self._boundaries) + 1)
        boundaries = self._boundaries
        for value in values:
            counts[bisect_left(boundaries, value)] += 1
        total, low, high = math.fsum(values), min(values), max(values)
        for agg in aggregations:
            with agg._lock:
                if agg._value is None:
                    agg._value = agg._get_empty_bucket_counts()
                bucket_counts = agg._value
                for i, c in enumerate(counts):
                    if c:
                        bucket_counts[i] += c
                agg._sum += total
                if agg._record_min_max:
                    agg._min = min(agg._min, low)
                    agg._max = max(agg._max, high)


class DeferredHistogram:
    """A histogram of ``spec`` whose :meth:`record` is a list append; see the module docstring.

    Labels are passed as values in the order of ``label_keys`` (a tuple is the series key: no dict is built or
    hashed per value). Safe to record from any thread.
    """

    def __init__(self, meter: Meter, spec: MetricSpec, buckets: Sequence[float], label_keys: tuple[str, ...]) -> None:
        histogram = meter.create_histogram(
            spec.name, spec.unit, spec.description, explicit_bucket_boundaries_advisory=list(buckets)
        )
        self._bulk = BulkMerge(histogram, buckets)
        self._keys = label_keys
        self._pending: dict[tuple[Any, ...], list[float]] = {}
        self._lock = threading.Lock()
        self._merge_lock = threading.Lock()
        # An observable with no observations: its callback runs at the start of every collection, before the
        # readers read the histogram, and exports nothing itself.
        # The name is this object's own: a second histogram of the same metric (another instrumentation on the same
        # provider) must not share, and so lose, this callback.
        meter.create_observable_up_down_counter(f"sieve.internal.flush.{id(self):x}", [self._before_collection])

    def record(self, value: float, *labels: Any) -> None:
        with self._lock:
            values = self._pending.get(labels)
            if values is None:
                self._pending[labels] = [value]
                return
            values.append(value)
            if len(values) < MAX_PENDING:
                return
            del self._pending[labels]
        self._merge(((labels, values),))

    def flush(self) -> None:
        """Hand every pending value to the SDK histogram (what a collection does first)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        self._merge(pending.items())

    def _merge(self, items: Iterable[tuple[tuple[Any, ...], list[float]]]) -> None:
        with self._merge_lock:
            for labels, values in items:
                self._bulk.add(dict(zip(self._keys, labels, strict=True)), values)

    def _before_collection(self, _options: CallbackOptions) -> list[Observation]:
        self.flush()
        return []
