"""A running demo service on loopback, instrumented, with spans captured in memory."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collectors.storage import StorageTelemetry, instrument_drivers, uninstrument_drivers
from collectors.websocket import WebSocketInstrumentation
from pipeline.bootstrap import Telemetry, build_telemetry
from pipeline.config import Settings, load_settings
from pipeline.demo.provider import Provider
from pipeline.demo.service import CLIENT_OPS, SERVER_OPS, DemoService
from pipeline.demo.store import Store


@dataclass
class Running:
    settings: Settings
    telemetry: Telemetry
    spans: InMemorySpanExporter
    service: DemoService
    provider: Provider
    store: Store

    @property
    def url(self) -> str:
        return self.service.url

    def finished_spans(self) -> list:  # type: ignore[type-arg]
        self.telemetry.tracer_provider.force_flush()
        return list(self.spans.get_finished_spans())


async def start_demo(dsn: str, sampling: dict[str, object]) -> Running:
    settings = load_settings(
        environ={},
        database={"dsn": dsn},
        prometheus={"port": 0},
        service={
            "port": 0,
            "hello_timeout_s": 1.0,
            "progress_interval_s": 0.05,
            "max_message_bytes": 4096,
            "db_connect_delay_s": 0,
        },
        provider={"latency_median_s": 0.01, "latency_sigma": 0.1, "chunks": 3, "failure_rate": 0.0},
        tracing={"schedule_delay_ms": 50},
        sampling=sampling,
    )
    spans = InMemorySpanExporter()
    telemetry = build_telemetry(settings, span_exporters=[spans])
    instrument_drivers(telemetry.tracer_provider)
    storage = StorageTelemetry(telemetry.tracer_provider, telemetry.meter_provider)
    store = await Store.open(dsn, storage, settings.service)
    provider = Provider(settings.provider, telemetry.tracer_provider, random.Random(7))
    ws = WebSocketInstrumentation(
        telemetry.tracer_provider,
        telemetry.meter_provider,
        ops=CLIENT_OPS,
        send_ops=SERVER_OPS,
        max_message_bytes=settings.service.max_message_bytes,
    )
    service = await DemoService(settings.service, store, provider, ws).start()
    return Running(settings, telemetry, spans, service, provider, store)


async def stop_demo(running: Running) -> None:
    await running.service.stop()
    await running.store.close()
    uninstrument_drivers()
    running.telemetry.shutdown()


@pytest.fixture
async def demo(migrated_dsn: str) -> AsyncIterator[Running]:
    # These tests are about the instrumentation: every span must reach the exporter.
    running = await start_demo(migrated_dsn, {"enabled": False})
    try:
        yield running
    finally:
        await stop_demo(running)


@pytest.fixture
async def sampled_demo(migrated_dsn: str) -> AsyncIterator[Running]:
    """The demo behind the default Collector-compatible policies (no Sieve extensions: rates stay predictable)."""
    running = await start_demo(migrated_dsn, {"enabled": True, "extensions": False})
    try:
        yield running
    finally:
        await stop_demo(running)
