"""Exemplars that always resolve: latency histograms and error counters on ``/metrics`` name a trace the tail
sampler kept, never one it dropped.

Elsewhere exemplars are picked when a measurement is recorded, before tail sampling decides, so a click often lands
on a dropped trace. Here the picker (:class:`~pipeline.exemplars.picker.ExemplarPicker`) sits in the kept-span
chain, after the decision: it only ever sees kept, stamped spans. It maps each to the series it contributed to and
the bucket its duration fell in (:mod:`~pipeline.exemplars.sources`), and keeps a few per series per scrape
interval, errors and slow ones preferred, in bounded memory (:mod:`~pipeline.exemplars.store`). At exposition
(:mod:`~pipeline.exemplars.collector`) they are attached to the samples of the registry OpenTelemetry's
Prometheus reader fills, and prometheus_client writes them in OpenMetrics.

:func:`attach_exemplars` is the one call the composition root makes.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor
from prometheus_client import CollectorRegistry

from pipeline.exemplars.collector import ExemplarCollector
from pipeline.exemplars.picker import ExemplarPicker
from pipeline.exemplars.store import DEFAULT_MAX_SERIES, Candidate, ExemplarStore

__all__ = ["Candidate", "ExemplarCollector", "ExemplarPicker", "ExemplarStore", "attach_exemplars"]


def attach_exemplars(
    registry: CollectorRegistry, kept: SynchronousMultiSpanProcessor, *, max_series: int = DEFAULT_MAX_SERIES
) -> CollectorRegistry:
    """Add the picker to the kept-span chain and return the registry to serve: ``registry``'s metrics with
    exemplars. ``registry`` itself is left as it is (the demo report and tests read it)."""
    store = ExemplarStore(max_series)
    kept.add_span_processor(ExemplarPicker(store))
    # Nameless (the wrapped metrics change with every scrape), yet still filtered by `/metrics?name[]=...`.
    served = CollectorRegistry(support_collectors_without_names=True)
    served.register(ExemplarCollector(registry, store))
    return served
