"""The kept-spans file: JSON lines from real SDK spans, rotated at a size, a bounded number of backups kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline.errors import ConfigError
from pipeline.export.spans_file import SpansFileExporter, SpansFileSettings


def make_spans(n: int, prefix: str = "op") -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for i in range(n):
        with tracer.start_as_current_span(f"{prefix}-{i}", attributes={"i": i}):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def names(path: Path) -> list[str]:
    return [json.loads(line)["name"] for line in path.read_text().splitlines()] if path.exists() else []


def test_spans_behind_a_batch_processor_become_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = SpansFileExporter(SpansFileSettings(path))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("root", attributes={"odd": "\ud800 and \x00"}):
        pass
    provider.shutdown()
    (line,) = path.read_text().splitlines()
    span = json.loads(line)
    assert span["name"] == "root" and span["attributes"]["odd"] == "\ud800 and \x00"  # escaped, so it encodes


def test_rotation_keeps_the_newest_spans_within_the_disk_bound(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    settings = SpansFileSettings(path, max_bytes=4096, backups=2)
    exporter = SpansFileExporter(settings)
    spans = make_spans(200)
    for span in spans:  # one span per export, as a busy batch processor might
        assert exporter.export([span]) is SpanExportResult.SUCCESS
    exporter.shutdown()

    files = [path, path.with_name("spans.jsonl.1"), path.with_name("spans.jsonl.2")]
    assert all(f.exists() for f in files) and not path.with_name("spans.jsonl.3").exists()
    assert all(f.stat().st_size <= settings.max_bytes for f in files)
    assert exporter.rotations > 3  # older files were really deleted, not kept
    # Oldest backup first, current file last: one unbroken run ending with the last span exported.
    kept = names(files[2]) + names(files[1]) + names(files[0])
    expected = [s.name for s in spans]
    assert kept == expected[-len(kept) :]


def test_an_existing_file_counts_towards_the_limit_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("x" * 3000 + "\n")
    exporter = SpansFileExporter(SpansFileSettings(path, max_bytes=4096, backups=1))
    exporter.export(make_spans(20))
    exporter.shutdown()
    assert path.with_name("spans.jsonl.1").read_text() == "x" * 3000 + "\n"
    assert len(names(path)) == 20


def test_no_backups_means_the_file_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = SpansFileExporter(SpansFileSettings(path, max_bytes=2048, backups=0))
    for span in make_spans(100):
        exporter.export([span])
    exporter.shutdown()
    assert [p.name for p in tmp_path.iterdir()] == ["spans.jsonl"]
    assert 0 < path.stat().st_size <= 2048 and names(path)[-1] == "op-99"


def test_a_batch_larger_than_the_limit_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = SpansFileExporter(SpansFileSettings(path, max_bytes=1024, backups=1))
    exporter.export(make_spans(1, "small"))
    exporter.export(make_spans(10, "big"))
    exporter.shutdown()
    assert names(path.with_name("spans.jsonl.1")) == ["small-0"]
    assert names(path) == [f"big-{i}" for i in range(10)]


def test_a_failed_write_loses_that_batch_counted_and_never_raises(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.mkdir()  # a directory where the file should be: every open fails
    exporter = SpansFileExporter(SpansFileSettings(path))
    assert exporter.export(make_spans(3)) is SpanExportResult.FAILURE
    assert exporter.spans_lost == 3
    exporter.shutdown()
    assert exporter.export(make_spans(1)) is SpanExportResult.FAILURE  # shut down


@pytest.mark.parametrize(
    ("field", "value", "setting"),
    [
        ("max_bytes", 10, "tracing.spans_file_max_bytes"),
        ("max_bytes", True, "tracing.spans_file_max_bytes"),
        ("backups", -1, "tracing.spans_file_backups"),
        ("backups", 1000, "tracing.spans_file_backups"),
    ],
)
def test_bad_settings_name_the_setting(field: str, value: object, setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        SpansFileSettings(Path("x"), **{field: value})  # type: ignore[arg-type]


def test_defaults() -> None:
    settings = SpansFileSettings("spans.jsonl")  # type: ignore[arg-type]
    assert settings.path == Path("spans.jsonl") and settings.max_bytes == 50 * 1024 * 1024 and settings.backups == 3
