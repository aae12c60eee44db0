"""Runtime metric names (``collectors/runtime.py``): what blocks the event loop shows up here first."""

from __future__ import annotations

from pipeline.names.spec import Kind, MetricSpec

# Lag resolves from a millisecond (a slow callback) to seconds (a blocking network call).
LAG_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

LOOP_LAG = MetricSpec(
    "runtime.asyncio.loop.lag",
    Kind.HISTOGRAM,
    "s",
    "How late the event loop ran a timer: a blocking call (sync SDK, time.sleep) stalls every connection",
    buckets=LAG_BUCKETS_S,
)
TASKS = MetricSpec("runtime.asyncio.tasks", Kind.GAUGE, "{task}", "Tasks alive on the event loop")

METRICS: tuple[MetricSpec, ...] = (LOOP_LAG, TASKS)
