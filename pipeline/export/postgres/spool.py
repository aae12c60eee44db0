"""An on-disk spool of batches: append-only JSON-lines segment files, read back oldest first.

Layout: ``<dir>/seg-<12-digit sequence>.jsonl``; each line is one batch ``{"signal": ..., "rows": [...]}``.
A line goes to the file in one unbuffered ``write`` call, so a process killed mid-write leaves at most a torn
last line, which replay counts as corrupt and skips. Without ``fsync`` a machine crash can lose what the page
cache held; a process crash cannot.

Replay is at-least-once: a segment is deleted only after all its batches were written, and a batch is not
remembered as sent across processes, so after a crash part of a segment may be sent twice. The natural keys and
``ON CONFLICT DO NOTHING`` make that harmless.

Not thread-safe: only the sink's worker thread touches it (``size_bytes`` is read elsewhere, a plain int).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.export.postgres.encode import dumps

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"^seg-(\d{12})\.jsonl$")


@dataclass(frozen=True)
class SpooledBatch:
    """One batch read back from the spool, and where it sits (segment, position) so it can be acknowledged."""

    segment: int
    index: int  # position of the batch within its segment
    signal: str
    rows: list[dict[str, Any]]


class Spool:
    """The sink's on-disk spool: appends batches within a byte budget and replays them oldest first."""

    def __init__(self, directory: Path, budget_bytes: int, segment_bytes: int, fsync: bool = False) -> None:
        self.directory = directory
        self.budget_bytes = budget_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self._sizes: dict[int, int] = {}  # segment number -> bytes
        for path in directory.iterdir():
            match = _SEGMENT.match(path.name)
            if match:
                self._sizes[int(match.group(1))] = path.stat().st_size
        # Kept apart from _sizes so other threads (health, flush) can read it without iterating a changing dict.
        self._total = sum(self._sizes.values())
        self._next = max(self._sizes, default=0) + 1
        self._open_seq: int | None = None  # the segment being appended to
        self._open_fd: int | None = None
        # Replay state of the oldest segment (in memory only).
        self._loaded_seq: int | None = None
        self._loaded: list[SpooledBatch] = []
        self._position = 0
        self.corrupt_batches = 0

    @property
    def size_bytes(self) -> int:
        return self._total

    @property
    def segments(self) -> int:
        return len(self._sizes)

    def empty(self) -> bool:
        return not self._sizes

    def append(self, signal: str, rows: list[dict[str, Any]]) -> bool:
        """Add a batch at the end; False (nothing written) when it would exceed the disk budget."""
        line = (dumps({"signal": signal, "rows": rows}) + "\n").encode()
        if self._total + len(line) > self.budget_bytes:
            return False
        if self._open_fd is None or self._sizes.get(self._open_seq or -1, 0) >= self.segment_bytes:
            self._rotate()
        assert self._open_fd is not None and self._open_seq is not None
        view = memoryview(line)
        while view:  # a regular file takes it in one write; loop only for the pathological partial write
            written = os.write(self._open_fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(self._open_fd)
        self._sizes[self._open_seq] += len(line)
        self._total += len(line)
        return True

    def peek(self) -> SpooledBatch | None:
        """The oldest batch not yet acknowledged, or None when the spool is empty."""
        while self._sizes:
            oldest = min(self._sizes)
            if self._loaded_seq != oldest:
                if oldest == self._open_seq:
                    self._close_open()  # seal it: new batches go to a newer segment
                self._load(oldest)
            if self._position < len(self._loaded):
                return self._loaded[self._position]
            self._remove(oldest)
        return None

    def ack(self, batch: SpooledBatch) -> None:
        """The batch is in the database (or was rejected for good): move past it."""
        if batch.segment != self._loaded_seq or batch.index != self._position:
            raise ValueError("spool batches must be acknowledged in order")
        self._position += 1
        if self._position >= len(self._loaded):
            self._remove(batch.segment)

    def close(self) -> None:
        self._close_open()

    # -- internals ---------------------------------------------------------------------------------------------

    def _path(self, seq: int) -> Path:
        return self.directory / f"seg-{seq:012d}.jsonl"

    def _rotate(self) -> None:
        self._close_open()
        seq = self._next
        self._next += 1
        self._open_fd = os.open(self._path(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._open_seq = seq
        self._sizes[seq] = 0

    def _close_open(self) -> None:
        if self._open_fd is not None:
            if self.fsync:
                os.fsync(self._open_fd)
            os.close(self._open_fd)
        self._open_fd = None
        self._open_seq = None

    def _load(self, seq: int) -> None:
        batches: list[SpooledBatch] = []
        try:
            lines = self._path(seq).read_bytes().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                record = json.loads(line)
                signal, rows = record["signal"], record["rows"]
                if not isinstance(signal, str) or not isinstance(rows, list):
                    raise ValueError("not a spooled batch")
            except (ValueError, KeyError, TypeError):
                # A torn last line from a killed process, or a foreign file: count it, never stop on it.
                self.corrupt_batches += 1
                log.warning("skipping an unreadable line in spool segment %s", self._path(seq).name)
                continue
            batches.append(SpooledBatch(seq, len(batches), signal, rows))
        self._loaded_seq, self._loaded, self._position = seq, batches, 0

    def _remove(self, seq: int) -> None:
        if seq == self._open_seq:
            self._close_open()
        self._path(seq).unlink(missing_ok=True)
        self._total -= self._sizes.pop(seq, 0)
        if self._loaded_seq == seq:
            self._loaded_seq, self._loaded, self._position = None, [], 0
