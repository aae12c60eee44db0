"""The sink's one worker thread: queue -> batched insert (retry, breaker) -> or the spool, and spool replay.

Rules the loop keeps:

* While the spool holds anything, new batches are appended to it rather than sent, so rows reach the database
  in the order they were recorded; replay sends the oldest first.
* A failure that blames the database (connection, missing function) is retried with backoff, counted by the
  breaker, and then spooled. A call that misses its client-side deadline (a hung database) is not retried: it
  opens the breaker at once and its batch is spooled. A failure that blames the rows (SQLSTATE 22/23/54) is not
  retried: the batch is split in halves until the offending rows are isolated, dropped and counted; the rest is
  written.
* While the breaker is open nothing on this thread touches the database; once per cooldown a probe runs on a
  thread of its own (``probe.py``), and its success closes the breaker and lets replay start at once.
* Every batch is repaired before it is sent or spooled (``repair.py``: lone surrogates, NUL, NaN), and a failure
  on one batch is contained and counted: it never ends the cycle or takes other batches with it.
* Nothing here raises into the application: the application only ever touches the queue.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from pipeline.export.postgres.backoff import Backoff
from pipeline.export.postgres.breaker import BreakerState, CircuitBreaker
from pipeline.export.postgres.probe import Prober
from pipeline.export.postgres.queue import RowQueue
from pipeline.export.postgres.repair import repair_rows
from pipeline.export.postgres.settings import SinkSettings
from pipeline.export.postgres.spool import Spool
from pipeline.export.postgres.store import SIGNALS, Failure, SinkDatabaseProtocol, classify
from pipeline.export.postgres.telemetry import SinkTelemetry

log = logging.getLogger(__name__)

Rows = list[dict[str, Any]]


class Writer:
    """The sink's worker: batches from the queue to the database, or to the spool while it cannot write, and replay."""

    def __init__(
        self,
        store: SinkDatabaseProtocol,
        spool: Spool,
        queue: RowQueue,
        breaker: CircuitBreaker,
        telemetry: SinkTelemetry,
        settings: SinkSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._spool = spool
        self._queue = queue
        self._breaker = breaker
        self._telemetry = telemetry
        self._settings = settings
        self._backoff = Backoff(settings.backoff_base_s, settings.backoff_max_s)
        self._clock = clock
        self._draw = draw
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sieve-postgres-sink", daemon=True)
        self._flush_cond = threading.Condition()
        self._flush_requested = 0
        self._flush_done = 0
        self._next_maintenance = 0.0
        self._replay_blocked_until = 0.0
        self._replay_failures = 0
        self._corrupt_seen = 0
        self._final_deadline = float("inf")
        self._prober = Prober(store.ping, self._probed)
        self._in_flight_rows = 0
        self.last_error: str | None = None
        self.last_success_at: float | None = None
        #: Last time the writer made progress: a successful write, or a cycle that left nothing waiting.
        self.progress_at = clock()

    # -- control (any thread) ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def flush(self, timeout_s: float) -> bool:
        """Write out what is queued and replay the spool. True once both are empty; False on timeout, or at once
        when the breaker is not closed (the rows are safe in the spool, and waiting for an outage helps no one)."""
        deadline = self._clock() + timeout_s
        while True:
            with self._flush_cond:
                self._flush_requested += 1
                target = self._flush_requested
            self._queue.wake()
            with self._flush_cond:
                while self._flush_done < target and self.alive:
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        return False
                    self._flush_cond.wait(min(remaining, 0.1))
            if self._queue.size == 0 and self._spool.empty():
                return True
            if not self.alive or self._breaker.state is not BreakerState.CLOSED or self._clock() >= deadline:
                return False

    def stop(self, timeout_s: float) -> bool:
        """Final flush (write, or spool what cannot be written) and end the thread. True if it ended in time."""
        self._final_deadline = self._clock() + timeout_s * 0.8
        self._stop.set()
        self._queue.wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._prober.join(0.1)  # a probe ends within its own deadlines; do not hold the shutdown for it
        return not self._thread.is_alive()

    @property
    def probes(self) -> int:
        """Breaker probes started."""
        return self._prober.probes

    @property
    def rows_waiting(self) -> int:
        """Rows not yet in the database or the spool: queued, or in the call under way."""
        return self._queue.size + self._in_flight_rows

    # -- the loop (worker thread) ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._flush_cond:
                    generation = self._flush_requested
                try:
                    self._cycle()
                except Exception:  # a bug here must be loud but must not end the sink
                    log.exception("Postgres sink worker cycle failed")
                    self.last_error = "worker cycle failed (see log)"
                    self._stop.wait(self._settings.flush_interval_s)
                self._mark_flushed(generation)
                self._queue.wait(self._wait_s())
            self._final()
        except Exception:
            log.exception("Postgres sink worker failed during its final flush")
            self.last_error = "final flush failed (see log)"
        finally:
            self._spool.close()
            self._mark_flushed(self._flush_requested)

    def _mark_flushed(self, generation: int) -> None:
        with self._flush_cond:
            self._flush_done = max(self._flush_done, generation)
            self._flush_cond.notify_all()

    def _wait_s(self) -> float:
        if self._flush_requested > self._flush_done:
            return 0.0
        wait = self._settings.flush_interval_s
        if self._breaker.state is not BreakerState.CLOSED:
            # Wake when the next probe is due; a running probe wakes the queue itself when it ends.
            if not self._prober.running:
                wait = min(wait, self._breaker.seconds_until_probe())
        elif not self._spool.empty():
            wait = min(wait, max(self._replay_blocked_until - self._clock(), 0.0))
        return wait

    def _cycle(self) -> None:
        self._usable()  # starts a probe when one is due, whether or not rows are waiting
        self._maybe_maintain()
        # Move what is queued now, not what arrives meanwhile, so a steady stream cannot starve the replay.
        pending = self._queue.size
        moved = 0
        while moved < pending:
            batches = self._queue.take()
            if not batches:
                break
            for signal, rows in batches:
                moved += len(rows)
                self._deliver_contained(signal, rows)
        self._replay(self._clock() + self._settings.flush_interval_s)
        self._count_corrupt()
        if self._queue.size == 0 and self._spool.empty():
            self.progress_at = self._clock()  # nothing waits: idle is not stalled

    def _final(self) -> None:
        while batches := self._queue.take():
            for signal, rows in batches:
                self._deliver_contained(signal, rows)
        self._replay(self._final_deadline)
        self._count_corrupt()

    def _usable(self) -> bool:
        """May this thread call the database now? Only with the breaker closed. Otherwise, once the cooldown has
        passed, start the probe (on its own thread) whose success closes the breaker."""
        if self._breaker.state is BreakerState.CLOSED:
            return True
        if not self._stop.is_set() and self._breaker.allow():  # open -> half_open once the cooldown is over
            self._prober.start()
        return False

    def _probed(self, error: BaseException | None) -> None:
        """The probe's result (on the probe's thread)."""
        if error is None:
            self._replay_failures = 0
            self._replay_blocked_until = 0.0  # replay at once: the database has just answered
            self._breaker.record_success()
        else:
            self.last_error = f"probe: {type(error).__name__}: {error}".strip()[:500]
            self._breaker.record_failure()
        self._queue.wake()

    def _repair(self, signal: str, rows: Rows) -> Rows:
        """The batch with every string and value encodable; rows that cannot be made so are dropped, counted."""
        result = repair_rows(rows)
        if result.repaired:
            self._telemetry.repaired(signal, result.repaired)
        if result.unencodable:
            log.error("Postgres sink dropped %d %s rows it could not encode", len(result.unencodable), signal)
            self._telemetry.dropped(signal, "unencodable", len(result.unencodable))
        return result.rows

    def _deliver_contained(self, signal: str, rows: Rows) -> None:
        """Deliver one batch; a bug on it costs that batch (counted), never the cycle or the other batches."""
        try:
            self._deliver(signal, self._repair(signal, rows))
        except Exception:
            log.exception("Postgres sink failed on a batch of %d %s rows: dropped", len(rows), signal)
            self.last_error = "a batch failed (see log)"
            self._telemetry.dropped(signal, "internal_error", len(rows))

    def _deliver(self, signal: str, rows: Rows) -> None:
        if not rows:
            return
        if not self._spool.empty() or not self._usable() or not self._send(signal, rows):
            self._to_spool(signal, rows)

    def _send(self, signal: str, rows: Rows, max_attempts: int | None = None) -> bool:
        """True when the rows are dealt with (written, or rejected and counted); False on a transient failure."""
        attempts = max_attempts or self._settings.max_attempts
        attempt = 0
        while True:
            attempt += 1
            started = self._clock()
            self._in_flight_rows = len(rows)
            try:
                inserted = self._store.write(signal, rows)
            except Exception as exc:
                failure = classify(exc)
                self._telemetry.batch(signal, failure.value, self._clock() - started)
                self.last_error = f"{type(exc).__name__}: {exc}".strip()[:500]
                if failure is Failure.REJECTED:
                    return self._split(signal, rows, exc)
                self._telemetry.retried(signal)
                if failure is Failure.TIMEOUT:
                    # A hung database: a retry would hang as long, holding new rows in memory meanwhile.
                    log.warning("Postgres sink: %s; opening the breaker", exc)
                    self._breaker.trip()
                    return False
                self._breaker.record_failure()
                if attempt >= attempts or self._stop.is_set() or self._breaker.state is not BreakerState.CLOSED:
                    return False
                if self._stop.wait(self._backoff.delay_s(attempt, self._draw())):
                    return False
                continue
            finally:
                self._in_flight_rows = 0
            self._breaker.record_success()
            self._telemetry.batch(signal, "ok", self._clock() - started)
            self._telemetry.written(signal, inserted, len(rows))
            self.last_success_at = self.progress_at = self._clock()
            return True

    def _split(self, signal: str, rows: Rows, exc: BaseException) -> bool:
        if len(rows) == 1:
            log.error("Postgres sink dropped a %s row the database rejected: %s", signal, exc)
            self._telemetry.dropped(signal, "rejected", 1)
            return True
        middle = len(rows) // 2
        for half in (rows[:middle], rows[middle:]):
            if not self._send(signal, half):
                self._to_spool(signal, half)
        return True

    def _to_spool(self, signal: str, rows: Rows) -> None:
        try:
            appended = self._spool.append(signal, rows)
        except OSError as exc:  # disk full, permissions: count it like a full spool, and say why
            log.error("Postgres sink could not write its spool: %s: dropped %d %s rows", exc, len(rows), signal)
            self._telemetry.dropped(signal, "spool_error", len(rows))
            return
        except Exception:  # rows were repaired first, so this is a bug: lose only the rows it is about
            log.exception(
                "Postgres sink could not spool a batch of %d %s rows; spooling them one by one", len(rows), signal
            )
            for row in rows:
                self._to_spool_one(signal, row)
            return
        if appended:
            self._telemetry.spooled(signal, len(rows))
        else:
            log.warning(
                "Postgres sink spool is full (%d bytes): dropped %d %s rows", self._spool.size_bytes, len(rows), signal
            )
            self._telemetry.dropped(signal, "spool_full", len(rows))

    def _to_spool_one(self, signal: str, row: dict[str, Any]) -> None:
        try:
            appended = self._spool.append(signal, [row])
        except OSError:
            self._telemetry.dropped(signal, "spool_error", 1)
        except Exception:
            self._telemetry.dropped(signal, "unencodable", 1)
        else:
            if appended:
                self._telemetry.spooled(signal, 1)
            else:
                self._telemetry.dropped(signal, "spool_full", 1)

    def _replay(self, deadline: float) -> None:
        while self._clock() < deadline and self._clock() >= self._replay_blocked_until:
            batch = self._spool.peek()
            if batch is None or not self._usable():
                return
            if batch.signal not in SIGNALS:
                self._telemetry.dropped(batch.signal, "spool_corrupt", len(batch.rows))
                self._spool.ack(batch)
                continue
            try:
                # One attempt per batch here; the pause between failed replays comes from _replay_blocked_until.
                sent = self._send(batch.signal, self._repair(batch.signal, batch.rows), max_attempts=1)
            except Exception:
                log.exception(
                    "Postgres sink failed replaying a batch of %d %s rows: dropped", len(batch.rows), batch.signal
                )
                self._telemetry.dropped(batch.signal, "internal_error", len(batch.rows))
                self._spool.ack(batch)
                continue
            if not sent:
                self._replay_failures += 1
                delay = self._backoff.delay_s(self._replay_failures, self._draw())
                self._replay_blocked_until = self._clock() + delay
                return
            self._replay_failures = 0
            self._spool.ack(batch)

    def _count_corrupt(self) -> None:
        corrupt = self._spool.corrupt_batches
        if corrupt > self._corrupt_seen:
            # The rows of a torn line cannot be counted; each unreadable line counts as one.
            self._telemetry.dropped("unknown", "spool_corrupt", corrupt - self._corrupt_seen)
            self._corrupt_seen = corrupt

    def _maybe_maintain(self) -> None:
        now = self._clock()
        if now < self._next_maintenance or self._breaker.state is not BreakerState.CLOSED:
            return
        try:
            created, dropped = self._store.maintain(self._settings.retention_days, self._settings.partitions_ahead_days)
        except Exception as exc:
            failure = classify(exc)
            if failure is Failure.TIMEOUT:
                self._breaker.trip()
            elif failure is Failure.TRANSIENT:
                self._breaker.record_failure()
            self.last_error = f"maintenance: {type(exc).__name__}: {exc}".strip()[:500]
            log.warning("Postgres sink partition maintenance failed (retrying in a minute): %s", exc)
            self._next_maintenance = now + min(60.0, self._settings.maintenance_interval_s)
            return
        if created or dropped:
            log.info("Postgres sink partitions: %d created, %d dropped past retention", created, dropped)
        self._next_maintenance = now + self._settings.maintenance_interval_s
