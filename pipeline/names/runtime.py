"""Runtime metric names (``collectors/runtime.py``): what blocks the event loop shows up here first."""

from __future__ import annotations

from pipeline.names.spec import Kind, MetricSpec

LOOP_LAG = MetricSpec(
    "runtime.asyncio.loop.lag",
    Kind.HISTOGRAM,
    "s",
    "How late the event loop ran a timer: a blocking call (sync SDK, time.sleep) stalls every connection",
)
TASKS = MetricSpec("runtime.asyncio.tasks", Kind.GAUGE, "{task}", "Tasks alive on the event loop")

METRICS: tuple[MetricSpec, ...] = (LOOP_LAG, TASKS)
