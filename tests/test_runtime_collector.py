from __future__ import annotations

import asyncio
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from collectors.runtime import LoopMonitor
from pipeline.names import runtime as n


async def test_a_blocking_call_shows_up_as_loop_lag() -> None:
    reader = InMemoryMetricReader()
    monitor = LoopMonitor(MeterProvider(metric_readers=[reader]), interval_s=0.02).start()
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # noqa: ASYNC251 - what a synchronous SDK call inside async code does to every connection
    await asyncio.sleep(0.05)
    await monitor.stop()
    assert monitor.max_lag_s >= 0.15
    data = reader.get_metrics_data()
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    lag = metrics[n.LOOP_LAG.name].data.data_points[0]
    assert lag.count >= 3 and lag.max >= 0.15
    assert metrics[n.TASKS.name].data.data_points[0].value >= 1
