"""The bounded in-memory queue between the application's threads and the sink's worker.

Bounded in rows across all signals. ``offer`` never blocks: it takes the lock for the time of a deque extend
and returns how many rows fitted; the caller counts the rest as dropped.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

Row = dict[str, Any]


class RowQueue:
    """Rows waiting for the writer, per signal, bounded in rows; the writer takes them in batches."""

    def __init__(self, capacity_rows: int, batch_size: int, signals: Sequence[str]) -> None:
        self.capacity_rows = capacity_rows
        self.batch_size = batch_size
        self._rows: dict[str, deque[Row]] = {s: deque() for s in signals}
        self._size = 0
        self._cond = threading.Condition(threading.Lock())
        self._wake = False

    @property
    def size(self) -> int:
        return self._size

    def offer(self, signal: str, rows: Sequence[Row]) -> int:
        """Enqueue what fits; return the number of rows accepted."""
        with self._cond:
            room = self.capacity_rows - self._size
            accepted = rows if len(rows) <= room else rows[: max(room, 0)]
            if accepted:
                self._rows[signal].extend(accepted)
                self._size += len(accepted)
                if self._size >= self.batch_size:
                    self._cond.notify()
            return len(accepted)

    def take(self) -> list[tuple[str, list[Row]]]:
        """Up to ``batch_size`` rows of each signal that has any, oldest first."""
        out: list[tuple[str, list[Row]]] = []
        with self._cond:
            for signal, rows in self._rows.items():
                if rows:
                    n = min(len(rows), self.batch_size)
                    out.append((signal, [rows.popleft() for _ in range(n)]))
                    self._size -= n
        return out

    def full_batch_ready(self) -> bool:
        with self._cond:
            return any(len(rows) >= self.batch_size for rows in self._rows.values())

    def wait(self, timeout_s: float) -> None:
        """Sleep until a full batch is waiting, ``wake()`` is called, or the timeout passes."""
        with self._cond:
            if self._wake or self._size >= self.batch_size:
                self._wake = False
                return
            self._cond.wait(timeout_s)
            self._wake = False

    def wake(self) -> None:
        with self._cond:
            self._wake = True
            self._cond.notify_all()
