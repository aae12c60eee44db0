"""Every series name a Sieve dashboard or alert may select, with the labels each one carries.

Built from ``pipeline.names`` (the one table of Sieve's metrics) plus what sits next to them in Prometheus:
the series Prometheus adds per scrape target, the ``ALERTS`` series of its rule engine, the OTel exporter's
``target_info``, and the ``process_*`` gauges prometheus_client's default registry adds to ``/metrics``
(checked against the demo's real exposition: no ``python_*`` series are registered there).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.names import ALL_METRICS, Kind

# Labels Prometheus attaches to every scraped series (scrape config), and those the OTel exporter adds.
TARGET_LABELS = frozenset({"job", "instance"})
SCOPE_LABELS = frozenset({"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"})

# Synthetic series of the Prometheus server itself.
PROMETHEUS_SERIES = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "scrape_timeout_seconds",
    "scrape_sample_limit",
    "scrape_body_size_bytes",
)
# prometheus_client's process collector, served on the same /metrics as Sieve's own series.
PROCESS_SERIES = (
    "process_cpu_seconds_total",
    "process_max_fds",
    "process_open_fds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
)
# Series whose labels are open-ended (alert labels, resource attributes, recording rules): any label is accepted.
OPEN_SERIES = ("ALERTS", "ALERTS_FOR_STATE", "target_info")


@dataclass(frozen=True)
class Catalogue:
    """Series name -> the labels it may carry (``None``: any label)."""

    series: dict[str, frozenset[str] | None]

    def __contains__(self, name: object) -> bool:
        return name in self.series

    def has_label(self, name: str, label: str) -> bool:
        labels = self.series.get(name)
        return labels is None or label in labels

    def describe_labels(self, name: str) -> str:
        labels = self.series.get(name)
        return "any label" if labels is None else ", ".join(sorted(labels))

    def suggestion(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.series), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""


def build_catalogue(extra_names: Iterable[str] = ()) -> Catalogue:
    """The catalogue of ``pipeline.names`` plus Prometheus' own series and ``extra_names`` (any labels)."""
    series: dict[str, frozenset[str] | None] = {}
    for spec in ALL_METRICS:
        labels = frozenset(spec.prometheus_label(a) for a in spec.labels) | TARGET_LABELS | SCOPE_LABELS
        base = spec.prometheus_name
        if spec.kind is Kind.HISTOGRAM:
            series[f"{base}_bucket"] = labels | {"le"}
            series[f"{base}_sum"] = labels
            series[f"{base}_count"] = labels
        else:
            series[base] = labels
    for name in (*PROMETHEUS_SERIES, *PROCESS_SERIES):
        series[name] = TARGET_LABELS
    for name in (*OPEN_SERIES, *extra_names):
        series[name] = None
    return Catalogue(series)
