"""The composition root: one call builds the pipeline and its collectors; closing it puts process state back."""

from __future__ import annotations

import gc
from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline import noop, setup
from pipeline.config import load_settings


def _settings(tmp_path: Path, **overrides: object) -> object:
    return load_settings(
        environ={},
        prometheus={"enabled": False},
        logs={"enabled": False},
        sink={"spool_dir": str(tmp_path / "spool")},
        **overrides,  # type: ignore[arg-type]
    )


async def test_setup_builds_collectors_and_close_restores_the_collector_thresholds(tmp_path: Path) -> None:
    before = gc.get_threshold()
    spans = InMemorySpanExporter()
    sieve = setup(_settings(tmp_path, sampling={"enabled": False}), install_globals=False, span_exporters=[spans])  # type: ignore[arg-type]
    assert gc.get_threshold()[0] == max(7000, before[0])
    tracer = sieve.tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("work"):
        pass
    assert sieve.websocket is not None and sieve.storage is not None and sieve.metrics_url is None
    await sieve.aclose()
    assert gc.get_threshold() == before
    assert [s.name for s in spans.get_finished_spans()] == ["work"]  # sampling off: every span kept
    await sieve.aclose()  # closing twice is harmless


async def test_gc_tuning_can_be_left_alone(tmp_path: Path) -> None:
    before = gc.get_threshold()
    sieve = setup(_settings(tmp_path, runtime={"gc_threshold0": 0}), install_globals=False)  # type: ignore[arg-type]
    assert gc.get_threshold() == before
    await sieve.aclose()


def test_the_noop_twin_records_nothing(tmp_path: Path) -> None:
    twin = noop(_settings(tmp_path))  # type: ignore[arg-type]
    assert twin.telemetry is None and twin.metrics_url is None
    with twin.tracer_provider.get_tracer("t").start_as_current_span("nothing") as span:
        assert not span.is_recording()
    twin.shutdown()


def test_the_budget_is_a_setting_of_its_own(tmp_path: Path) -> None:
    """A user changes the kept-volume budget without restating every policy in a file."""
    sieve = setup(_settings(tmp_path, sampling={"budget_traces_per_second": 5}), install_globals=False)  # type: ignore[arg-type]
    assert sieve.telemetry is not None and sieve.telemetry.sampler is not None
    assert sieve.telemetry.sampler.config.budget.traces_per_second == 5
    sieve.shutdown()


def test_otlp_export_compresses_when_asked(tmp_path: Path) -> None:
    from tests.otlp_receiver import OtlpReceiver

    with OtlpReceiver() as receiver:
        settings = _settings(
            tmp_path, otlp={"endpoint": receiver.endpoint, "compression": "gzip"}, sampling={"enabled": False}
        )
        sieve = setup(settings, install_globals=False)  # type: ignore[arg-type]
        with sieve.tracer_provider.get_tracer("t").start_as_current_span("work"):
            pass
        sieve.shutdown()
        received = receiver.snapshot()
    assert [s.name for s in received.spans] == ["work"] and received.encodings["gzip"] >= 1


def test_sieves_own_histograms_keep_their_buckets(tmp_path: Path) -> None:
    """The seconds view is for the contrib instrumentations: a connection lifetime still buckets up to hours."""
    from prometheus_client import generate_latest

    from pipeline.metering import histogram
    from pipeline.names import websocket as ws

    sieve = setup(_settings(tmp_path, sampling={"enabled": False}), install_globals=False, serve_http=False)  # type: ignore[arg-type]
    assert sieve.telemetry is not None
    lifetime = histogram(sieve.meter_provider.get_meter("sieve.collectors.websocket"), ws.CONNECTION_DURATION)
    lifetime.record(3000.0, {ws.CLOSE_CODE: "1000"})
    exposition = generate_latest(sieve.telemetry.registry).decode()
    sieve.shutdown()
    assert 'le="3600"' in exposition and 'le="14400"' in exposition
