"""The sink must not trace its own writes, even with psycopg instrumented globally."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline.export.postgres import PostgresSink

from .conftest import fast_settings

pytestmark = pytest.mark.postgres


def test_no_spans_from_the_sinks_own_connections(migrated_dsn: str, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = PsycopgInstrumentor()
    instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    try:
        # Control: an ordinary connection is traced.
        with psycopg.connect(migrated_dsn) as conn:
            conn.execute("SELECT 1")
        assert exporter.get_finished_spans(), "the instrumentor should trace ordinary connections"
        exporter.clear()

        sink = PostgresSink(migrated_dsn, fast_settings(tmp_path / "spool"))
        try:
            for i in range(50):
                sink.record_event("traced?", {"i": i})
            assert sink.flush(10)
            assert sink.stats()["written"] == {"events": 50}
        finally:
            sink.shutdown(5)
        assert exporter.get_finished_spans() == ()
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
