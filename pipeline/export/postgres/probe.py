"""The breaker's probe, on a thread of its own: the sink's worker never waits on a database that may hang.

While the breaker is half-open one probe (``SinkDatabase.ping``: checkout and ``SELECT 1``, each under its deadline)
runs here; the worker goes on moving new rows to the spool, so what sits in memory stays within one flush interval even
when a probe waits out its whole deadline. At most one probe thread exists at a time, and every probe ends within its
deadlines, so threads never pile up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Prober:
    """Runs at most one probe of the database at a time, on its own thread, and reports its result."""

    def __init__(self, ping: Callable[[], None], on_result: Callable[[BaseException | None], None]) -> None:
        self._ping = ping
        self._on_result = on_result
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.probes = 0

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start a probe unless one is running; True when this call started one."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self.probes += 1
            self._thread = threading.Thread(target=self._run, name="sieve-postgres-sink-probe", daemon=True)
            self._thread.start()
            return True

    def join(self, timeout_s: float) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._ping()
        except Exception as exc:  # every failure is a failed probe; the caller classifies nothing here
            error = exc
        try:
            self._on_result(error)
        except Exception:
            log.exception("handling the Postgres sink's probe result failed")
