"""Event-loop health: how late timers fire (loop lag) and how many tasks are alive.

The old daemon called synchronous SDKs with blocking retries from async code and stalled every connection's
stream without any metric showing it. A probe task asks to wake every ``interval_s``; the delay beyond that is
the time something held the loop. Process CPU and memory come from prometheus_client's process collector,
registered by the composition root.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter

from pipeline import metering
from pipeline.names import runtime as n


class LoopMonitor:
    """Measures how late the event loop runs a timer, and counts its tasks."""

    def __init__(self, meter_provider: MeterProvider | None = None, *, interval_s: float = 0.25) -> None:
        meter = get_meter("sieve.collectors.runtime", meter_provider=meter_provider)
        self._lag = metering.histogram(meter, n.LOOP_LAG)
        metering.observable_gauge(meter, n.TASKS, self._observe_tasks)
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.max_lag_s = 0.0

    def start(self) -> LoopMonitor:
        """Start probing the running loop (call from inside it)."""
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._probe(), name="sieve-loop-monitor")
        return self

    def attach(self) -> None:
        """Start probing the running loop unless already probing one that still runs (cheap: call it often)."""
        if self._task is not None and not self._task.done():
            return
        with contextlib.suppress(RuntimeError):  # no running loop in this thread
            self.start()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _probe(self) -> None:
        while True:
            expected = time.perf_counter() + self._interval_s
            await asyncio.sleep(self._interval_s)
            lag = max(0.0, time.perf_counter() - expected)
            self.max_lag_s = max(self.max_lag_s, lag)
            self._lag.record(lag)

    def _observe_tasks(self, _options: CallbackOptions) -> list[Observation]:
        # Called from the scrape thread: asyncio.all_tasks(loop) is safe to read there (it copies a WeakSet).
        loop = self._loop
        if loop is None or loop.is_closed():
            return []
        try:
            return [Observation(len(asyncio.all_tasks(loop)))]
        except RuntimeError:  # the set changed size while copied; skip this scrape
            return []
