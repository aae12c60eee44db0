"""The sink's self-metrics: OpenTelemetry instruments named in ``pipeline.names.sink`` plus plain counters.

The plain counters back ``PostgresSink.stats()`` whether or not a MeterProvider was given; without one the
instruments come from the API's no-op provider (the "no-op twin"), so recording costs next to nothing.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, NoOpMeterProvider, Observation

from pipeline import metering
from pipeline.names import sink as names
from pipeline.names.spec import MetricSpec

_SCOPE = "sieve.export.postgres"


class SinkTelemetry:
    """The sink's counters and gauges: every row enqueued, written, skipped, spooled or dropped, by signal."""

    def __init__(self, meter_provider: MeterProvider | None) -> None:
        meter = (meter_provider or NoOpMeterProvider()).get_meter(_SCOPE)
        self._meter = meter
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, ...]] = Counter()

        self._enqueued = metering.counter(meter, names.ROWS_ENQUEUED)
        self._written = metering.counter(meter, names.ROWS_WRITTEN)
        self._skipped = metering.counter(meter, names.ROWS_SKIPPED)
        self._spooled = metering.counter(meter, names.ROWS_SPOOLED)
        self._dropped = metering.counter(meter, names.ROWS_DROPPED)
        self._retries = metering.counter(meter, names.RETRIES)
        self._transitions = metering.counter(meter, names.BREAKER_TRANSITIONS)
        self._duration = metering.histogram(meter, names.BATCH_DURATION)

    def observe(
        self,
        breaker_state: Callable[[], str],
        queue_rows: Callable[[], int],
        spool_bytes: Callable[[], int],
    ) -> None:
        """Register the gauges; the callbacks are read at collection time."""

        def gauge(spec: MetricSpec, read: Callable[[], float]) -> None:
            def callback(_options: CallbackOptions) -> Iterable[Observation]:
                return [Observation(read())]

            metering.observable_gauge(self._meter, spec, callback)

        gauge(names.BREAKER_STATE, lambda: names.BREAKER_STATE_VALUES[breaker_state()])
        gauge(names.QUEUE_ROWS, queue_rows)
        gauge(names.SPOOL_SIZE, spool_bytes)

    # -- recording ---------------------------------------------------------------------------------------------

    def _count(self, key: tuple[str, ...], n: int) -> None:
        with self._lock:
            self._counts[key] += n

    def enqueued(self, signal: str, n: int) -> None:
        if n:
            self._count(("enqueued", signal), n)
            self._enqueued.add(n, {names.SIGNAL: signal})

    def written(self, signal: str, inserted: int, sent: int) -> None:
        self._count(("written", signal), inserted)
        self._written.add(inserted, {names.SIGNAL: signal})
        if sent > inserted:
            self._count(("skipped", signal), sent - inserted)
            self._skipped.add(sent - inserted, {names.SIGNAL: signal})

    def spooled(self, signal: str, n: int) -> None:
        self._count(("spooled", signal), n)
        self._spooled.add(n, {names.SIGNAL: signal})

    def repaired(self, signal: str, n: int) -> None:
        """Rows whose strings or values were made encodable (``repair.py``); kept, so not a loss. A plain counter
        (in ``stats()``): a metric family needs its dashboard panel first."""
        self._count(("repaired", signal), n)

    def dropped(self, signal: str, reason: str, n: int) -> None:
        if n:
            self._count(("dropped", signal, reason), n)
            self._dropped.add(n, {names.SIGNAL: signal, names.DROP_REASON: reason})

    def retried(self, signal: str) -> None:
        self._count(("retries", signal), 1)
        self._retries.add(1, {names.SIGNAL: signal})

    def batch(self, signal: str, outcome: str, duration_s: float) -> None:
        self._duration.record(duration_s, {names.SIGNAL: signal, names.OUTCOME: outcome})

    def transition(self, state: str) -> None:
        self._count(("breaker", state), 1)
        self._transitions.add(1, {names.BREAKER_STATE_LABEL: state})

    def snapshot(self) -> dict[str, Any]:
        """Nested plain dicts: ``{"written": {"points": 10}, "dropped": {"events": {"queue_full": 2}}, ...}``."""
        keys = ("enqueued", "written", "skipped", "spooled", "repaired", "dropped", "retries")
        out: dict[str, Any] = {k: {} for k in keys}
        out["breaker"] = {}
        with self._lock:
            items = list(self._counts.items())
        for key, n in items:
            if key[0] == "dropped":
                out["dropped"].setdefault(key[1], {})[key[2]] = n
            else:
                out[key[0]][key[1]] = n
        return out
