"""The composition root: one call turns settings into a running Sieve pipeline, collectors included.

::

    from pipeline import setup

    sieve = setup()                                   # settings from SIEVE_*, OTEL_* and SIEVE_CONFIG
    async with serve(sieve.websocket.handler(handler), host, port, **sieve.websocket.serve_kwargs()):
        ...                                           # storage: sieve.storage.operation(...) around repository calls
    await sieve.aclose()                              # decides held traces, flushes, stops the endpoint

:func:`setup` builds the OpenTelemetry providers, the span path (span metrics, tail sampler, exporters), the
Postgres sink, the metrics and health endpoint (:mod:`pipeline.bootstrap`) *and* the collectors: the driver
instrumentations, storage telemetry with plan capture, the WebSocket instrumentation, the loguru bridge and the
event-loop monitor. ``sieve demo``, the CLI and the OpenTelemetry configurator (``opentelemetry-instrument``) all
call it; none wires pieces by hand. :func:`noop` is its twin with the API's no-op providers (the benchmarks'
"no telemetry" baseline).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import NoOpTracerProvider, TracerProvider

from collectors.logs import LogBridge
from collectors.runtime import LoopMonitor
from collectors.storage import ExplainOptions, StorageTelemetry, instrument_drivers, uninstrument_drivers
from collectors.websocket import WebSocketInstrumentation
from pipeline.bootstrap import Telemetry, build_telemetry
from pipeline.config import Settings, load_settings
from pipeline.db import to_url
from pipeline.health import CachedCheck, ComponentState
from pipeline.sampling import SpanObserver

log = logging.getLogger(__name__)


@dataclass
class Sieve:
    """What :func:`setup` built. Close it once, with :meth:`aclose` (or :meth:`shutdown` outside a loop)."""

    settings: Settings
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    websocket: WebSocketInstrumentation
    storage: StorageTelemetry
    telemetry: Telemetry | None = None  # None for the no-op twin
    logs: LogBridge | None = None
    loop_monitor: LoopMonitor | None = None
    _drivers: bool = field(default=False, repr=False)
    _closed: bool = field(default=False, repr=False)
    _gc_before: tuple[int, int, int] | None = field(default=None, repr=False)

    @property
    def metrics_url(self) -> str | None:
        return self.telemetry.metrics_url if self.telemetry else None

    def force_flush(self, timeout_ms: int = 10_000) -> None:
        """Decide held traces and push everything buffered out (spans, metrics, the sink)."""
        if self.telemetry is not None:
            self.telemetry.force_flush(timeout_ms)

    async def aclose(self) -> None:
        """Stop the loop monitor and plan capture, then :meth:`shutdown`."""
        if self._closed:
            return
        if self.loop_monitor is not None:
            await self.loop_monitor.stop()
        await self.storage.close()
        self.shutdown()

    def shutdown(self) -> None:
        """Decide what the sampler holds (so held log records follow their traces), flush and stop everything."""
        if self._closed:
            return
        self._closed = True
        if self.telemetry is not None:
            self.telemetry.shutdown()
        if self.logs is not None:
            self.logs.uninstall()
        if self._drivers:
            # The driver instrumentations are process-wide and bound to this pipeline's tracer provider.
            uninstrument_drivers()
        if self._gc_before is not None:
            gc.set_threshold(*self._gc_before)

    async def __aenter__(self) -> Sieve:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def setup(
    settings: Settings | None = None,
    *,
    database_dsn: str | None = None,
    install_globals: bool = True,
    serve_http: bool | None = None,
    span_exporters: Sequence[SpanExporter] = (),
    upstream_processors: Sequence[SpanProcessor] = (),
    span_observers: Sequence[SpanObserver] = (),
) -> Sieve:
    """Build and start the whole pipeline from ``settings`` (default: :func:`pipeline.config.load_settings`).

    ``database_dsn`` is the application's Postgres (default ``database.dsn``): the sink writes there unless
    ``sink.dsn`` names another, and slow reads are explained there. Without either there is no sink and no plan
    capture. ``install_globals`` sets OpenTelemetry's global providers (what instrumentations and
    ``trace.get_tracer`` use); tests pass False to build several pipelines side by side. ``span_exporters`` get the
    kept spans besides the configured ones (tests pass an ``InMemorySpanExporter``); ``upstream_processors`` see
    every span before sampling, on the application's thread; ``span_observers`` see every span too, in slices, on the
    tail sampler's worker thread (cheaper for the application: statistics, counting).
    """
    settings = settings if settings is not None else load_settings()
    dsn = database_dsn or settings.database.dsn
    telemetry = build_telemetry(
        settings,
        span_exporters=span_exporters,
        upstream_processors=upstream_processors,
        span_observers=span_observers,
        serve_http=serve_http,
        install_globals=install_globals,
        database_dsn=settings.sink.dsn or dsn,
    )
    try:
        return _with_collectors(settings, telemetry, dsn)
    except BaseException:
        telemetry.shutdown()
        raise


def _with_collectors(settings: Settings, telemetry: Telemetry, dsn: str | None) -> Sieve:
    tracer_provider, meter_provider = telemetry.tracer_provider, telemetry.meter_provider
    storage_settings = settings.storage
    drivers = storage_settings.instrument_drivers
    if drivers:
        instrument_drivers(tracer_provider, capture_parameters=storage_settings.capture_parameters)
    explain = storage_settings.explain
    storage = StorageTelemetry(
        tracer_provider,
        meter_provider,
        slow_threshold_ms=storage_settings.slow_threshold_ms,
        slow_thresholds_ms=storage_settings.slow_thresholds_ms,
        statement_spans=storage_settings.statement_spans,
        explain=ExplainOptions(
            dsn=to_url(dsn),
            analyze=explain.analyze,
            max_per_minute=explain.max_per_minute,
            cache_ttl_s=explain.cache_ttl_s,
            timeout_ms=explain.timeout_ms,
        )
        if explain.enabled and dsn
        else None,
    )
    if dsn:
        telemetry.readiness.register("database", CachedCheck(lambda: _database_state(dsn)))
    logs: LogBridge | None = None
    if telemetry.log_sampler is not None:
        logs = LogBridge(telemetry.logger_provider, telemetry.log_sampler, settings.logs.bridge).install()
        # Records of kept traces are rebuilt and replayed only while something receives them (an OTLP log
        # exporter or any loguru sink the application added): otherwise that work is waste.
        telemetry.log_sampler.replay_kept = logs.has_receivers
    monitor = _loop_monitor(settings, meter_provider)
    gc_before = _tune_gc(settings.runtime.gc_threshold0)
    return Sieve(
        settings,
        tracer_provider,
        meter_provider,
        websocket=_websocket(settings, tracer_provider, meter_provider, monitor),
        storage=storage,
        telemetry=telemetry,
        logs=logs,
        loop_monitor=monitor,
        _drivers=drivers,
        _gc_before=gc_before,
    )


def noop(settings: Settings | None = None) -> Sieve:
    """The same collectors on the OpenTelemetry API's no-op providers: no SDK, nothing recorded or exported."""
    settings = settings if settings is not None else load_settings()
    tracer_provider, meter_provider = NoOpTracerProvider(), NoOpMeterProvider()
    storage = StorageTelemetry(tracer_provider, meter_provider)
    websocket = _websocket(settings, tracer_provider, meter_provider, None)
    return Sieve(settings, tracer_provider, meter_provider, websocket=websocket, storage=storage)


def _websocket(
    settings: Settings, tracer_provider: TracerProvider, meter_provider: MeterProvider, monitor: LoopMonitor | None
) -> WebSocketInstrumentation:
    ws = settings.websocket
    return WebSocketInstrumentation(
        tracer_provider,
        meter_provider,
        envelope=ws.envelope,
        ops=ws.ops,
        send_ops=ws.send_ops,
        max_ops=ws.max_ops,
        max_message_bytes=ws.max_message_bytes,
        op_field=ws.op_field,
        traceparent_field=ws.traceparent_field,
        allow_binary=ws.allow_binary,
        # The loop monitor needs a running loop; the first handshake runs in the server's.
        on_first_connection=monitor.attach if monitor is not None else None,
    )


def _tune_gc(threshold0: int) -> tuple[int, int, int] | None:
    """Raise the first-generation threshold while the pipeline runs (see ``runtime.gc_threshold0``); returns the
    thresholds to restore, or None when nothing changed. Measured under the demo's load: garbage collection fell
    from about 250 to 30 us a turn."""
    before = gc.get_threshold()
    if threshold0 <= before[0]:
        return None
    gc.set_threshold(threshold0, before[1], before[2])
    return before


def _loop_monitor(settings: Settings, meter_provider: MeterProvider) -> LoopMonitor | None:
    if not settings.runtime.loop_monitor:
        return None
    monitor = LoopMonitor(meter_provider, interval_s=settings.runtime.loop_interval_s)
    with contextlib.suppress(RuntimeError):  # no running loop yet: started by the first connection
        asyncio.get_running_loop()
        monitor.attach()
    return monitor


def _database_state(dsn: str) -> ComponentState:
    t0 = time.perf_counter()
    try:
        with suppress_instrumentation(), psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return ComponentState(False, {"error": str(exc).splitlines()[0][:200]})
    return ComponentState(True, {"round_trip_ms": round((time.perf_counter() - t0) * 1000, 1)})
