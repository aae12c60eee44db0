"""A running demo service on loopback, instrumented, with spans captured in memory."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline.bootstrap import Telemetry
from pipeline.config import Settings, load_settings
from pipeline.demo.provider import Provider
from pipeline.demo.run import demo_settings
from pipeline.demo.service import DemoService
from pipeline.demo.store import ConversationRepository
from pipeline.root import Sieve, setup


@dataclass
class Running:
    settings: Settings
    sieve: Sieve
    spans: InMemorySpanExporter
    service: DemoService
    provider: Provider
    store: ConversationRepository

    @property
    def telemetry(self) -> Telemetry:
        assert self.sieve.telemetry is not None
        return self.sieve.telemetry

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
        sink={"enabled": False},
        logs={"enabled": False},
        storage={"explain": {"enabled": False}},
    )
    settings = demo_settings(settings)
    spans = InMemorySpanExporter()
    # The tests' own sink-less pipeline: spans to memory, no plan capture, no log bridge.
    sieve = setup(settings, install_globals=False, span_exporters=[spans])
    store = await ConversationRepository.open(dsn, sieve.storage, settings.service)
    provider = Provider(settings.provider, sieve.tracer_provider, random.Random(7))
    service = await DemoService(settings.service, store, provider, sieve.websocket).start()
    return Running(settings, sieve, spans, service, provider, store)


async def stop_demo(running: Running) -> None:
    await running.service.stop()
    await running.store.close()
    await running.sieve.aclose()


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
