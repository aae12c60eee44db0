"""Exemplars at exposition: a prometheus_client collector that re-reads another registry and attaches exemplars.

OpenTelemetry's Prometheus reader writes no exemplars, and Sieve does not re-implement exposition. This collector
wraps the registry the reader fills: it yields the same metric families, and on the samples that may carry one
(a histogram's ``_bucket`` lines, a counter's ``_total``) of the series in ``sources.SOURCES`` it sets
``Exemplar({"trace_id", "span_id"}, value, timestamp)`` from the store. prometheus_client's own exposition then
writes them when the scraper asks for OpenMetrics (Prometheus does), and leaves them out of the classic text
format. A bucket gets an exemplar only if the exemplar's value lies inside it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample

from pipeline.exemplars.sources import SOURCES, Source
from pipeline.exemplars.store import ExemplarStore
from pipeline.names import DURATION_BUCKETS_S


class ExemplarCollector(Collector):
    """Yields the reader's registry again, with the store's exemplars set on the samples that may carry one."""

    def __init__(
        self,
        source: CollectorRegistry,
        store: ExemplarStore,
        sources: Sequence[Source] = SOURCES,
        bounds: Sequence[float] = DURATION_BUCKETS_S,
    ) -> None:
        self._source = source
        self._store = store
        self._by_sample = {s.sample_name: s for s in sources}
        self._bounds = tuple(bounds)
        self._bucket_index = {float(b): i for i, b in enumerate(self._bounds)} | {math.inf: len(self._bounds)}
        self.attached = 0  # exemplars written by the last collection (tests, debugging)

    def collect(self) -> Iterable[Metric]:
        self._store.next_generation()
        attached = 0
        for family in self._source.collect():
            if not any(s.name in self._by_sample for s in family.samples):
                yield family
                continue
            out = copy.copy(family)
            out.samples = []
            for sample in family.samples:
                exemplar = self._exemplar(sample)
                if exemplar is not None:
                    attached += 1
                out.samples.append(sample if exemplar is None else sample._replace(exemplar=exemplar))
            yield out
        self.attached = attached

    def _exemplar(self, sample: Sample) -> Exemplar | None:
        source = self._by_sample.get(sample.name)
        if source is None:
            return None
        bucket = 0
        if source.is_histogram:
            try:
                le = float(sample.labels.get("le", "nan"))
            except ValueError:
                return None
            index = self._bucket_index.get(le)
            if index is None:  # a histogram with other bounds than the picker's
                return None
            bucket = index
        candidate = self._store.get((sample.name, source.key(sample.labels)), bucket)
        if candidate is None:
            return None
        if source.is_histogram and not self._inside(candidate.value, bucket):
            return None
        labels = {"trace_id": format(candidate.trace_id, "032x"), "span_id": format(candidate.span_id, "016x")}
        return Exemplar(labels, candidate.value, candidate.timestamp_s)

    def _inside(self, value: float, bucket: int) -> bool:
        upper = self._bounds[bucket] if bucket < len(self._bounds) else math.inf
        lower = self._bounds[bucket - 1] if bucket > 0 else -math.inf
        return lower < value <= upper
