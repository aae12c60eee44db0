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

from pipeline.names import sink as names

_SCOPE = "sieve.export.postgres"


class SinkTelemetry:
    def __init__(self, meter_provider: MeterProvider | None) -> None:
        meter = (meter_provider or NoOpMeterProvider()).get_meter(_SCOPE)
        self._meter = meter
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, ...]] = Counter()

        def counter(spec: names.MetricSpec) -> Any:
            return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)

        self._enqueued = counter(names.ROWS_ENQUEUED)
        self._written = counter(names.ROWS_WRITTEN)
        self._skipped = counter(names.ROWS_SKIPPED)
        self._spooled = counter(names.ROWS_SPOOLED)
        self._dropped = counter(names.ROWS_DROPPED)
        self._retries = counter(names.RETRIES)
        self._transitions = counter(names.BREAKER_TRANSITIONS)
        self._duration = meter.create_histogram(
            names.BATCH_DURATION.name,
            unit=names.BATCH_DURATION.unit,
            description=names.BATCH_DURATION.description,
            explicit_bucket_boundaries_advisory=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        )

    def observe(
        self,
        breaker_state: Callable[[], str],
        queue_rows: Callable[[], int],
        spool_bytes: Callable[[], int],
    ) -> None:
        """Register the gauges; the callbacks are read at collection time."""

        def gauge(spec: names.MetricSpec, read: Callable[[], float]) -> None:
            def callback(_options: CallbackOptions) -> Iterable[Observation]:
                return [Observation(read())]

            self._meter.create_observable_gauge(spec.name, [callback], unit=spec.unit, description=spec.description)

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
