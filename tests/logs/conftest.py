"""Fixtures for the log path: a real TracerProvider, an in-memory OTel log pipeline, a fake clock and decision
source, and bridges that are always uninstalled (loguru's logger and the stdlib root logger are process-wide)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from loguru import logger
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from collectors.logs import LogBridge, LogBridgeSettings
from pipeline.sampling.logs import LogSampler, LogSamplingSettings
from pipeline.sampling.logs.testing import FakeDecisionSource
from pipeline.sampling.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def decisions() -> FakeDecisionSource:
    return FakeDecisionSource()


@pytest.fixture
def tracer() -> Tracer:
    return TracerProvider().get_tracer("tests.logs")


class OtelLogs:
    """A LoggerProvider exporting synchronously into memory."""

    def __init__(self) -> None:
        self.exporter = InMemoryLogRecordExporter()
        self.provider = LoggerProvider()
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))

    @property
    def records(self) -> list[ReadableLogRecord]:
        return list(self.exporter.get_finished_logs())

    def bodies(self) -> list[Any]:
        return [r.log_record.body for r in self.records]


@pytest.fixture
def otel() -> Iterator[OtelLogs]:
    logs = OtelLogs()
    yield logs
    logs.provider.shutdown()


@pytest.fixture
def console() -> Iterator[list[Any]]:
    """A loguru sink standing for the user's console: collects each record (removed after the test)."""
    records: list[Any] = []
    sink_id = logger.add(lambda message: records.append(message.record), level="TRACE", format="{message}")
    yield records
    logger.remove(sink_id)


@pytest.fixture
def make_sampler(clock: FakeClock, decisions: FakeDecisionSource) -> Callable[..., LogSampler]:
    def make(follow: bool = True, seed: int = 1234, **settings: Any) -> LogSampler:
        settings.setdefault("categories", {"HOT": 0.0, "ALL": 1.0})
        return LogSampler(
            LogSamplingSettings(**settings),
            decisions=decisions if follow else None,
            clock=clock,
            rng=random.Random(seed).random,
        )

    return make


@pytest.fixture
def make_bridge(otel: OtelLogs) -> Iterator[Callable[..., LogBridge]]:
    """Installs bridges and uninstalls every one at teardown; restores the root logger's handlers and level."""
    bridges: list[LogBridge] = []
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def make(sampler: LogSampler | None = None, *, with_otel: bool = True, **settings: Any) -> LogBridge:
        bridge = LogBridge(otel.provider if with_otel else None, sampler, LogBridgeSettings(**settings)).install()
        bridges.append(bridge)
        return bridge

    yield make
    for bridge in bridges:
        bridge.uninstall()
    root.handlers[:] = handlers
    root.setLevel(level)
