"""The composition root: settings in, wired OpenTelemetry providers out.

This is the only place that assembles the pipeline. The span path is::

    TracerProvider
      -> upstream processors   (span metrics from every span, before any sampling; the demo's span stats)
      -> tail sampler          (buffers per trace, decides, stamps kept spans; off: a pass-through)
      -> kept-span processors  (the SDK's BatchSpanProcessor per exporter: OTLP, a JSON-lines file, ...)

Only this module and the CLI touch OpenTelemetry's global providers, and only when asked
(``install_globals=True``): tests build as many independent ``Telemetry`` objects as they like.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider, TraceBasedExemplarFilter
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from prometheus_client import CollectorRegistry, ProcessCollector

from pipeline.config import Settings
from pipeline.exemplars import attach_exemplars
from pipeline.export.postgres import PostgresSink
from pipeline.export.reader import SharedMetricReader
from pipeline.export.spans_file import SpansFileExporter, SpansFileSettings
from pipeline.health import ComponentState, Readiness
from pipeline.http import TelemetryServer
from pipeline.names import DURATION_BUCKETS_S
from pipeline.sampling import (
    SpanObserver,
    TailSamplingConfig,
    TailSamplingProcessor,
    build_span_pipeline,
    default_config,
    load_tail_sampling_file,
)
from pipeline.sampling.logs import LogSampler
from pipeline.sampling.logs.metrics import register_log_metrics

log = logging.getLogger(__name__)

METRIC_PUSH_INTERVAL_S = 15.0  # metric points per series written to Postgres (and sent over OTLP) every 15 s


@dataclass
class Telemetry:
    """Everything the composition root built; ``shutdown()`` flushes and stops it in order."""

    settings: Settings
    resource: Resource
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    registry: CollectorRegistry
    readiness: Readiness
    server: TelemetryServer | None = None
    sampler: TailSamplingProcessor | None = None
    sink: PostgresSink | None = None
    logger_provider: LoggerProvider | None = None
    log_sampler: LogSampler | None = None
    _closers: list[Callable[[], object]] = field(default_factory=list, repr=False)

    @property
    def metrics_url(self) -> str | None:
        return f"{self.server.url}/metrics" if self.server else None

    def force_flush(self, timeout_ms: int = 10_000) -> None:
        self.tracer_provider.force_flush(timeout_ms)
        self.meter_provider.force_flush(timeout_ms)
        if self.sink is not None:
            self.sink.flush(timeout_ms / 1000)

    def shutdown(self) -> None:
        # Spans first (the batch processor drains), then metrics, then the sink both fed, then the endpoint.
        # Held log records follow their trace: the tracer provider's shutdown makes the last decisions first.
        log_steps: list[Callable[[], object]] = []
        if self.log_sampler is not None:
            log_steps.append(self.log_sampler.flush)
        if self.logger_provider is not None:
            log_steps.append(self.logger_provider.shutdown)
        for close in (
            self.tracer_provider.shutdown,
            *log_steps,
            self.meter_provider.shutdown,
            *reversed(self._closers),
        ):
            try:
                close()
            except Exception:  # shutting down must finish even when one part fails
                log.exception("telemetry shutdown step failed")
        if self.server:
            self.server.stop()
            self.server = None


def build_telemetry(
    settings: Settings,
    *,
    span_exporters: Sequence[SpanExporter] = (),
    upstream_processors: Sequence[SpanProcessor] = (),
    span_observers: Sequence[SpanObserver] = (),
    serve_http: bool | None = None,
    install_globals: bool = False,
    database_dsn: str | None = None,
) -> Telemetry:
    """Build providers, exporters and the HTTP endpoint from ``settings``.

    ``span_exporters`` are added to the ones the settings name (OTLP, the spans file); tests pass an
    ``InMemorySpanExporter`` here. With ``database_dsn`` (and ``sink.enabled``) kept spans and metrics also go
    to the Postgres sink.
    """
    resource = Resource.create({SERVICE_NAME: settings.service_name, SERVICE_INSTANCE_ID: str(uuid.uuid4())})
    registry = CollectorRegistry(auto_describe=True)
    # Process CPU, memory and file descriptors, from prometheus_client's own collector.
    ProcessCollector(registry=registry)
    readiness = Readiness()
    closers: list[Callable[[], object]] = []

    # One reader, so each measurement is aggregated once: /metrics collects from it at each scrape, and it pushes
    # the same cumulative collection to the sink and OTLP every 15 s (pipeline/export/reader.py).
    reader = SharedMetricReader(registry, _push_exporters(settings), push_interval_s=METRIC_PUSH_INTERVAL_S)
    meter_provider = MeterProvider(
        metric_readers=[reader],
        resource=resource,
        views=_views(),
        # The Prometheus exporter drops exemplars, so collecting them (about 1.4 us a measurement inside a
        # sampled span) is waste unless an OTLP endpoint can carry them.
        exemplar_filter=TraceBasedExemplarFilter() if settings.otlp.endpoint else AlwaysOffExemplarFilter(),
        shutdown_on_exit=False,
    )

    sink: PostgresSink | None = None
    if settings.sink.enabled and database_dsn:
        options = settings.sink.options
        if not options.source:
            options = dataclasses.replace(options, source=settings.service_name)
        # Built after the meter provider: the sink reports its own metrics through it.
        sink = PostgresSink(database_dsn, options, meter_provider=meter_provider)
        reader.add_exporter(sink.metric_exporter())
        closers.append(sink.shutdown)
        readiness.register("postgres_sink", lambda: _sink_state(sink))

    tracer_provider = TracerProvider(resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False)
    exporters = [*_configured_span_exporters(settings), *span_exporters]
    if sink is not None:
        exporters.append(sink.span_exporter())
    kept = SynchronousMultiSpanProcessor()
    for exporter in exporters:
        kept.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=settings.tracing.max_queue_size,
                schedule_delay_millis=settings.tracing.schedule_delay_ms,
                max_export_batch_size=settings.tracing.max_export_batch_size,
                meter_provider=meter_provider,
            )
        )
    for processor in upstream_processors:
        tracer_provider.add_span_processor(processor)
    # -- sampling (pipeline/sampling owns this): one processor = RED span metrics from 100 % of spans, counted off
    # the event loop (on even with sampling off), then the tail sampler, or a pass-through when sampling is off.
    span_pipeline = build_span_pipeline(
        kept,
        _sampling_config(settings) if settings.sampling.enabled else None,
        meter_provider,
        observers=span_observers,
    )
    tracer_provider.add_span_processor(span_pipeline)
    sampler: TailSamplingProcessor | None = span_pipeline if span_pipeline.sampling else None
    # -- end sampling

    readiness.register(
        "exporters",
        lambda: ComponentState(True, {"span_exporters": [type(e).__name__ for e in exporters]}),
    )

    logger_provider: LoggerProvider | None = None
    log_sampler: LogSampler | None = None
    if settings.logs.enabled:
        # A logger provider only when something exports logs: without one the bridge hands records to no OTel sink.
        if settings.otlp.endpoint and settings.otlp.logs:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

            logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
            logger_provider.add_log_record_processor(
                BatchLogRecordProcessor(
                    OTLPLogExporter(endpoint=f"{settings.otlp.endpoint}/v1/logs", **_otlp_options(settings))
                )
            )
        log_sampler = LogSampler(
            settings.logs.sampling,
            error_signal=sampler.error_signal if sampler else None,
            decisions=sampler,
        )
        register_log_metrics(log_sampler, meter_provider)
    telemetry = Telemetry(
        settings,
        resource,
        tracer_provider,
        meter_provider,
        registry,
        readiness,
        sampler=sampler,
        sink=sink,
        logger_provider=logger_provider,
        log_sampler=log_sampler,
    )
    telemetry._closers = closers
    if serve_http if serve_http is not None else settings.prometheus.enabled:
        # Exemplars on /metrics from kept spans only (pipeline/exemplars): the picker joins the kept-span chain
        # (`kept`, after the sampler's decision) and /metrics serves `registry` through it.
        served = attach_exemplars(registry, kept)
        telemetry.server = TelemetryServer(
            settings.prometheus.host, settings.prometheus.port, served, readiness
        ).start()
        server = telemetry.server
        readiness.register("prometheus", lambda: ComponentState(True, {"url": f"{server.url}/metrics"}))
    if install_globals:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return telemetry


def _sink_state(sink: PostgresSink) -> ComponentState:
    health = sink.health()  # once per probe: it reads the spool's size on disk
    return ComponentState(bool(health["ready"]), health)


def _sampling_config(settings: Settings) -> TailSamplingConfig:
    sampling = settings.sampling
    if sampling.policies_file:
        config = load_tail_sampling_file(sampling.policies_file)
    else:
        config = default_config(with_extensions=sampling.extensions)
    if sampling.budget_traces_per_second is not None:  # the budget alone, without restating every policy
        budget = dataclasses.replace(config.budget, traces_per_second=sampling.budget_traces_per_second)
        config = dataclasses.replace(config, budget=budget)
    return config


def _push_exporters(settings: Settings) -> list[MetricExporter]:
    if not settings.otlp.endpoint:
        return []
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return [OTLPMetricExporter(endpoint=f"{settings.otlp.endpoint}/v1/metrics", **_otlp_options(settings))]


def _otlp_options(settings: Settings) -> dict[str, Any]:
    """Timeout and compression, the same for traces, metrics and logs."""
    from opentelemetry.exporter.otlp.proto.http import Compression

    compression = Compression.Gzip if settings.otlp.compression == "gzip" else Compression.NoCompression
    return {"timeout": settings.otlp.timeout_s, "compression": compression}


def _views() -> list[View]:
    """Seconds-shaped buckets for the contrib database instrumentations, which advise none (psycopg's
    ``db.client.operation.duration`` in the stable-semconv mode). Scoped to their meters: Sieve's own histograms
    advise their buckets from ``pipeline/names`` (a connection's lifetime runs to hours, not 30 s)."""
    seconds = ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S)
    return [
        View(instrument_name=pattern, meter_name=meter, aggregation=seconds)
        for meter in _CONTRIB_DB_METERS
        for pattern in ("*.duration", "*_time")
    ]


_CONTRIB_DB_METERS = (
    "opentelemetry.instrumentation.psycopg",
    "opentelemetry.instrumentation.asyncpg",
    "opentelemetry.instrumentation.dbapi",
)


def _configured_span_exporters(settings: Settings) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    if settings.otlp.endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter(endpoint=f"{settings.otlp.endpoint}/v1/traces", **_otlp_options(settings)))
    tracing = settings.tracing
    if tracing.spans_file:
        exporters.append(
            SpansFileExporter(
                SpansFileSettings(tracing.spans_file, tracing.spans_file_max_bytes, tracing.spans_file_backups)
            )
        )
    return exporters
