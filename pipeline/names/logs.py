"""Metric names for the logs part of the pipeline (filled in by its issue)."""

from __future__ import annotations

from pipeline.names import MetricSpec

METRICS: tuple[MetricSpec, ...] = ()
