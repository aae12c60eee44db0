"""Kept spans as JSON lines in a size-bounded, rotating file (for the demo, and for people without a trace UI).

One span a line (``ReadableSpan.to_json`` without indentation), in a file that cannot grow without bound (a
demo soak once wrote 281 MB in 5.5 minutes)::

    spans.jsonl      the file being written
    spans.jsonl.1    the previous one (newest backup)
    ...
    spans.jsonl.N    the oldest kept; the one before it is deleted

A batch goes to a fresh file when it would take the current one past ``max_bytes``, so disk use stays within
``(backups + 1) * max_bytes`` (a single batch larger than ``max_bytes`` gets a file of its own). An existing file
is appended to and counts towards the limit, so the bound holds across restarts too.

Export runs on the SDK's batch thread (``BatchSpanProcessor``); a write that fails (disk full) loses that batch,
logged and counted in ``spans_lost``, and never raises into the SDK.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class SpansFileSettings:
    """Where kept spans go and how much disk they may take. ``tracing.spans_file_*`` in the configuration."""

    #: The file being written; backups are this path with ``.1`` ... ``.N`` appended.
    path: Path
    #: Size at which the file is rotated. 50 MiB holds about 100,000 spans of the demo service.
    max_bytes: int = 50 * _MIB
    #: Rotated files kept; 0 keeps none (the file starts over when full).
    backups: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) or self.max_bytes < 1024:
            raise ConfigError("tracing.spans_file_max_bytes", self.max_bytes, "an integer number of bytes >= 1024")
        if isinstance(self.backups, bool) or not isinstance(self.backups, int) or not 0 <= self.backups <= 100:
            raise ConfigError("tracing.spans_file_backups", self.backups, "an integer from 0 to 100")


class RotatingFile:
    """Append-only bytes with size-based rotation; thread-safe."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self.rotations = 0

    def write(self, data: bytes) -> None:
        """Append ``data`` whole, to a fresh file when it would not fit in the current one."""
        with self._lock:
            if self._fd is None:
                self._open()
            if self._size > 0 and self._size + len(data) > self.max_bytes:
                self._rotate()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self._size += written

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def backup(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            self.backup(self.backups).unlink(missing_ok=True)
            for n in range(self.backups - 1, 0, -1):
                if self.backup(n).exists():
                    os.replace(self.backup(n), self.backup(n + 1))
            if self.path.exists():
                os.replace(self.path, self.backup(1))
        self.rotations += 1
        self._open()


def span_line(span: ReadableSpan) -> str:
    """One span as one line of JSON (the SDK's own encoding, as the console exporter writes it)."""
    line: str = span.to_json(indent=None)  # the SDK leaves to_json's return unannotated
    return line + "\n"


class SpansFileExporter(SpanExporter):
    """A ``SpanExporter`` for kept spans, to put behind the SDK's ``BatchSpanProcessor``."""

    def __init__(self, settings: SpansFileSettings, formatter: Callable[[ReadableSpan], str] = span_line) -> None:
        self.settings = settings
        self._file = RotatingFile(settings.path, settings.max_bytes, settings.backups)
        self._formatter = formatter
        self._closed = False
        self.spans_lost = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        try:
            # ``to_json`` escapes non-ASCII, so any string encodes; "replace" guards a custom formatter.
            data = "".join(self._formatter(span) for span in spans).encode("utf-8", "replace")
            self._file.write(data)
        except Exception as exc:  # disk full, a formatter bug: lose this batch, say so, keep the SDK running
            self.spans_lost += len(spans)
            log.error("writing %d spans to %s failed: %s: %s", len(spans), self.settings.path, type(exc).__name__, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    @property
    def rotations(self) -> int:
        return self._file.rotations

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every export is one unbuffered write

    def shutdown(self) -> None:
        self._closed = True
        self._file.close()
