"""The one table of every metric and attribute key Sieve emits.

Collectors, the pipeline, dashboards and alert rules all take their names from here, so a renamed metric
breaks a test instead of a dashboard. Each signal has its own module; ``ALL_METRICS`` joins them.

``MetricSpec.prometheus_name`` follows what ``opentelemetry-exporter-prometheus`` 0.66b1 writes: characters
outside ``[a-zA-Z0-9_:]`` become ``_``, the unit becomes a suffix (``s`` -> ``_seconds``,
``By`` -> ``_bytes``; ``1`` and ``{annotations}`` add nothing), and monotonic counters get ``_total``.
"""

from __future__ import annotations

from pipeline.names import logs, runtime, sampling, sink, storage, websocket
from pipeline.names.spec import DURATION_BUCKETS_S, SIZE_BUCKETS_BY, Kind, MetricSpec

__all__ = ["ALL_METRICS", "BY_NAME", "DURATION_BUCKETS_S", "SIZE_BUCKETS_BY", "Kind", "MetricSpec"]


def _all() -> tuple[MetricSpec, ...]:
    specs: list[MetricSpec] = []
    for module in (websocket, storage, runtime, sampling, logs, sink):
        specs.extend(module.METRICS)
    names = [s.name for s in specs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise RuntimeError(f"metric names declared twice: {sorted(duplicates)}")
    return tuple(specs)


ALL_METRICS: tuple[MetricSpec, ...] = _all()
BY_NAME: dict[str, MetricSpec] = {s.name: s for s in ALL_METRICS}
