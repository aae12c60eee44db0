"""One round's demo server for the cost benchmark, in a process of its own, in one of three variants.

    python -m bench.cost_server --variant none|otel|sieve --settings '{"database": {"dsn": ...}, ...}'

It prints one JSON line when it serves (``{"url", "metrics_url", "pid"}``), serves until its stdin closes, then
shuts down and prints a second JSON line with what it exported. ``--settings`` holds ``load_settings`` overrides
(the environment is not read, so a developer's ``SIEVE_*`` variables cannot change what is measured).

The variants (what each one pays for is the point of the benchmark; see ``bench_cost`` for the workload):

(a) ``none``: ``start_stack(settings, instrumented=False)`` (``pipeline.noop``), the API's no-op providers: the
    demo service, its ConversationRepository and Provider with every collector call reaching a no-op.

(b) ``otel``: plain OpenTelemetry as a user would set it up by hand, installed as the global providers:

    - SDK ``TracerProvider`` (default resource and sampler) with the SDK's ``BatchSpanProcessor`` at its default
      settings, exporting **every** span to ``EncodingExporter`` (the OTLP protobuf encoder, bytes discarded);
    - SDK ``MeterProvider`` with a ``PrometheusMetricReader`` on prometheus_client's default registry, served by
      ``prometheus_client.start_http_server`` (the load generator scrapes it like (c)'s endpoint);
    - the contrib asyncpg and psycopg instrumentations (``collectors.storage.instrument_drivers``);
    - the same per-message WebSocket spans: Sieve's ``WebSocketInstrumentation`` on these plain providers, set up
      for the demo's protocol as ``sieve demo`` sets it (``demo_settings``; there is no contrib instrumentation
      for ``websockets``); its metrics come with it, so (b) records the same WebSocket measurements as (c). The
      Provider's CLIENT span, as (a) and (c) have it;
    - the ConversationRepository gets a ``StorageTelemetry`` on the API's no-op providers with ``statement_spans=True``:
      no Sieve operation spans, storage metrics, fingerprint stamping or plan capture, and every statement keeps the
      contrib instrumentation's span (Sieve folds those into its operation spans; plain OTel has no such thing);
    - no tail sampling, no span metrics, no Postgres sink, no log bridge, no loop monitor.

(c) ``sieve``: Sieve exactly as ``sieve demo`` builds it (``build_sieve_server``: today ``start_stack`` with the
    globals installed, i.e. ``pipeline.setup``: span metrics, the tail sampler, the Postgres sink, the log
    bridge, storage telemetry with plan capture, the loop monitor, the Prometheus endpoint), except that kept
    spans go to ``EncodingExporter`` instead of the demo's spans file, so (b) and (c) pay the same encoder for
    what they export.

In every variant loguru's default stderr sink is removed, as ``sieve demo`` does; the demo's DEBUG file sink is
the application's own logging, not telemetry, so it is left out (records still reach the bridge's
OpenTelemetry sink in (c)).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pipeline.config import Settings, load_settings


class EncodingExporter(SpanExporter):
    """Encode like the OTLP exporter would, then drop: the cost of export without a network."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans = 0
        self.bytes = 0
        self.batches = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        size = len(encode_spans(spans).SerializeToString())
        with self._lock:  # (c) may export from more than one batch processor thread
            self.spans += len(spans)
            self.bytes += size
            self.batches += 1
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def stats(self) -> dict[str, int]:
        return {"spans_exported": self.spans, "bytes_exported": self.bytes, "export_batches": self.batches}


@dataclass
class RunningServer:
    url: str
    metrics_url: str | None
    close: Callable[[], Awaitable[dict[str, Any]]]  # stops it; returns variant-specific stats


async def build_none_server(settings: Settings, exporter: EncodingExporter) -> RunningServer:
    """(a) No telemetry: the API's no-op providers, as ``start_stack(instrumented=False)`` builds them."""
    from pipeline.demo.run import start_stack

    stack = await start_stack(settings, instrumented=False)

    async def close() -> dict[str, Any]:
        await stack.close()
        return {}

    return RunningServer(stack.service.url, None, close)


async def build_otel_server(settings: Settings, exporter: EncodingExporter) -> RunningServer:
    """(b) Plain OpenTelemetry (see the module docstring for every choice)."""
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import NoOpTracerProvider
    from prometheus_client import start_http_server

    from collectors.storage import StorageTelemetry, instrument_drivers, uninstrument_drivers
    from collectors.websocket import WebSocketInstrumentation
    from pipeline.db import open_database, to_url
    from pipeline.demo.provider import Provider
    from pipeline.demo.run import demo_settings
    from pipeline.demo.service import DemoService
    from pipeline.demo.store import ConversationRepository

    database = open_database(settings.database)  # migrated and seeded by the benchmark, once
    ws_settings = demo_settings(settings).websocket  # the demo's protocol: a JSON envelope with its ops
    resource = Resource.create({SERVICE_NAME: settings.service_name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader()], resource=resource)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    http_server, _thread = start_http_server(0, addr="127.0.0.1")
    instrument_drivers(tracer_provider)
    # No Sieve operation spans or storage metrics; statement_spans=True so the drivers' own spans are not
    # folded into (absent) operation spans: every statement gets its contrib span, as plain OTel gives it.
    storage = StorageTelemetry(NoOpTracerProvider(), NoOpMeterProvider(), statement_spans=True)
    store = await ConversationRepository.open(to_url(database.dsn), storage, settings.service)
    provider = Provider(settings.provider, tracer_provider, random.Random(1))
    ws = WebSocketInstrumentation(
        tracer_provider,
        meter_provider,
        envelope=ws_settings.envelope,
        ops=ws_settings.ops,
        send_ops=ws_settings.send_ops,
        max_ops=ws_settings.max_ops,
        max_message_bytes=ws_settings.max_message_bytes,
        op_field=ws_settings.op_field,
        traceparent_field=ws_settings.traceparent_field,
        allow_binary=ws_settings.allow_binary,
    )
    service = await DemoService(settings.service, store, provider, ws).start()

    async def close() -> dict[str, Any]:
        await service.stop()
        await store.close()
        tracer_provider.shutdown()
        meter_provider.shutdown()
        uninstrument_drivers()
        http_server.shutdown()
        database.close()
        return {}

    return RunningServer(service.url, f"http://127.0.0.1:{http_server.server_port}/metrics", close)


async def build_sieve_server(settings: Settings, exporter: EncodingExporter) -> RunningServer:
    """(c) Sieve exactly as ``sieve demo`` builds it, with kept spans exported to ``exporter``.

    THE one place that knows how (c) is wired: the demo stack exactly as ``sieve demo`` builds it
    (``start_stack``, which calls ``pipeline.setup``), with ``exporter`` added as a kept-span exporter (the demo's
    spans file is not configured here).
    """
    import pipeline.demo.run as demo_run

    stack = await demo_run.start_stack(settings, install_globals=True, span_exporters=[exporter])
    telemetry = stack.telemetry
    if telemetry is None:  # (c) would export nothing and look cheaper than it is
        raise RuntimeError("bench cost: the demo stack built no pipeline; re-point build_sieve_server")

    async def close() -> dict[str, Any]:
        stats: dict[str, Any] = {}
        await stack.close()  # the sampler decides what it still holds first
        if telemetry.sampler is not None:
            s = telemetry.sampler.stats()
            stats["sampler"] = {k: s[k] for k in ("traces_seen", "traces_kept", "spans_seen", "spans_kept")}
            stats["sampler"]["kept_by_policy"] = s["kept_by_policy"]
        if telemetry.sink is not None:
            sink = telemetry.sink.stats()
            stats["sink"] = {k: sink[k] for k in ("enqueued", "written", "spooled", "dropped") if k in sink}
        return stats

    return RunningServer(stack.service.url, telemetry.metrics_url, close)


BUILDERS: dict[str, Callable[[Settings, EncodingExporter], Awaitable[RunningServer]]] = {
    "none": build_none_server,
    "otel": build_otel_server,
    "sieve": build_sieve_server,
}


async def serve(variant: str, settings: Settings) -> dict[str, Any]:
    exporter = EncodingExporter()
    server = await BUILDERS[variant](settings, exporter)
    print(json.dumps({"url": server.url, "metrics_url": server.metrics_url, "pid": os.getpid()}), flush=True)
    # Serve until the benchmark closes our stdin; a thread blocked in read() costs no CPU.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    stats = await server.close()
    return {"variant": variant, **exporter.stats(), **stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost_server")
    parser.add_argument("--variant", choices=sorted(BUILDERS), required=True)
    parser.add_argument("--settings", required=True, help="load_settings overrides as JSON")
    args = parser.parse_args(argv)
    from loguru import logger

    logger.remove()  # as `sieve demo` does: no console sink competing for the CPU
    settings = load_settings(environ={}, **json.loads(args.settings))
    stats = asyncio.run(serve(args.variant, settings))
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
