"""One metric reader for every consumer: each measurement is aggregated once.

The SDK keeps one aggregation per reader: with a Prometheus reader and a periodic reader for the Postgres sink
(and another for OTLP), every ``counter.add`` and ``histogram.record`` on the application's event loop was
aggregated two or three times. :class:`SharedMetricReader` is OpenTelemetry's Prometheus reader (``/metrics``
collects from it at each scrape) that also *pushes* its collection to exporters on an interval, from a thread of
its own: the sink's and OTLP's exporters see the same cumulative data the scrape sees. A push never goes through
the scrape's queue, so neither consumer steals the other's data.

At shutdown the reader makes one last collection and pushes it, so what was measured after the previous tick is
not lost, then shuts its exporters down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricExporter, MetricsData
from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)


class SharedMetricReader(PrometheusMetricReader):
    """The Prometheus reader, whose collections are also pushed to ``exporters`` every ``push_interval_s``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        exporters: Sequence[MetricExporter] = (),
        *,
        push_interval_s: float = 15.0,
    ) -> None:
        super().__init__(registry=registry)
        self._exporters: list[MetricExporter] = list(exporters)
        self._interval_s = push_interval_s
        self._pushing = threading.local()  # set on the thread that collects for a push, not for a scrape
        self._stop = threading.Event()
        self._shut_down = False
        self._thread: threading.Thread | None = None
        if self._exporters:
            self._thread = threading.Thread(target=self._run, name="sieve-metrics-push", daemon=True)
            self._thread.start()

    def add_exporter(self, exporter: MetricExporter) -> None:
        """Push to ``exporter`` too (the sink's exporter exists only once the meter provider does)."""
        self._exporters.append(exporter)
        if self._thread is None and not self._shut_down:
            self._thread = threading.Thread(target=self._run, name="sieve-metrics-push", daemon=True)
            self._thread.start()

    def push(self, timeout_millis: float = 10_000) -> None:
        """Collect now and hand the data to every exporter (the interval's work, or a flush)."""
        if not self._exporters:
            return
        self._pushing.active = True
        try:
            self.collect(timeout_millis=timeout_millis)
        finally:
            self._pushing.active = False

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        if not getattr(self._pushing, "active", False):
            super()._receive_metrics(metrics_data, timeout_millis, **kwargs)  # a scrape: /metrics renders it
            return
        if metrics_data is None:
            return
        for exporter in self._exporters:
            try:
                exporter.export(metrics_data, timeout_millis=timeout_millis)
            except Exception:  # one consumer's failure must not cost the others their data
                log.exception("metric export to %s failed", type(exporter).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.push()
            except Exception:
                log.exception("periodic metric push failed")

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        self.push(timeout_millis)
        ok = True
        for exporter in self._exporters:
            try:
                ok = exporter.force_flush(timeout_millis) and ok
            except Exception:
                ok = False
        return ok

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_millis / 1000)
        try:
            self.push(timeout_millis)  # the last collection: measured since the previous tick, not lost
        except Exception:
            log.exception("final metric push failed")
        for exporter in self._exporters:
            try:
                exporter.shutdown(timeout_millis=timeout_millis)
            except Exception:
                log.exception("metric exporter shutdown failed")
        super().shutdown(timeout_millis=timeout_millis, **kwargs)
