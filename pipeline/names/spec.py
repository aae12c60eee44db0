"""The shape of a metric declaration: :class:`MetricSpec`, its :class:`Kind`, and the shared bucket boundaries.

Every signal's module in :mod:`pipeline.names` declares its metrics with these; the package joins them. Instruments
are created from a spec by :mod:`pipeline.metering` (name, unit, description and buckets come from here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What kind of instrument a metric is, as Prometheus sees it."""

    COUNTER = "counter"
    UP_DOWN_COUNTER = "updowncounter"  # exported to Prometheus as a gauge
    HISTOGRAM = "histogram"
    GAUGE = "gauge"  # observable gauge or observable up/down counter


_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "%": "percent"}

# Bucket boundaries in seconds: the SDK's defaults are millisecond-shaped and would put every sub-5 s duration
# into one bucket (docs/background.md section 5).
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
SIZE_BUCKETS_BY: tuple[float, ...] = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)


@dataclass(frozen=True)
class MetricSpec:
    """One metric's declaration: name, kind, unit, description, label keys and, for a histogram, its buckets.

    ``buckets`` are the histogram's advisory boundaries (a view of the composition root may still override them);
    every histogram declares its own, and nothing else has any.
    """

    name: str
    kind: Kind
    unit: str
    description: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if (self.kind is Kind.HISTOGRAM) != bool(self.buckets):
            raise ValueError(f"{self.name}: a histogram declares its buckets, and only a histogram has buckets")
        if list(self.buckets) != sorted(set(self.buckets)):
            raise ValueError(f"{self.name}: bucket boundaries must increase: {self.buckets}")

    @property
    def prometheus_name(self) -> str:
        base = re.sub(r"[^a-zA-Z0-9_:]", "_", self.name)
        suffix = _UNIT_SUFFIX.get(self.unit, "")
        if suffix and not base.endswith("_" + suffix):
            base = f"{base}_{suffix}"
        if self.kind is Kind.COUNTER and not base.endswith("_total"):
            base += "_total"
        return base

    def prometheus_label(self, attribute: str) -> str:
        return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)
