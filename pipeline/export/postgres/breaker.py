"""A circuit breaker: closed, open, half-open, driven by an injected clock.

::

    closed --(failure_threshold consecutive failures, or trip())--> open
    open   --(cooldown elapsed; allow() lets one probe through)--> half_open
    half_open --(probe succeeded)--> closed        (cooldown back to reset_s)
    half_open --(probe failed)--> open             (cooldown doubled, up to reset_max_s)

While open, the sink does not touch the database at all: batches go straight to the spool, so an outage costs
one failed probe per cooldown instead of a connection attempt per batch. ``trip()`` is for a failure that
needs no second opinion (a call that hung past its deadline): waiting for the threshold would mean more calls
hanging just as long.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    """The breaker's state, as exported (``sieve.sink.breaker.state``) and shown in ``stats()``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


Transition = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    """Thread-safe; ``clock`` returns seconds (``time.monotonic`` in production, a fake in tests)."""

    def __init__(
        self,
        failure_threshold: int,
        reset_s: float,
        reset_max_s: float,
        clock: Callable[[], float],
        on_transition: Transition | None = None,
    ) -> None:
        if failure_threshold < 1 or reset_s <= 0 or reset_max_s < reset_s:
            raise ValueError("invalid breaker thresholds")
        self._threshold = failure_threshold
        self._reset_s = reset_s
        self._reset_max_s = reset_max_s
        self._clock = clock
        self._on_transition = on_transition
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._cooldown_s = reset_s
        self._opened_at = 0.0
        self._opened_count = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """May a call go to the database now? Moves open -> half_open once the cooldown has passed."""
        with self._lock:
            if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._cooldown_s:
                self._move(BreakerState.HALF_OPEN)
            return self._state is not BreakerState.OPEN

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._cooldown_s = self._reset_s
            if self._state is not BreakerState.CLOSED:
                self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN:
                self._cooldown_s = min(self._cooldown_s * 2, self._reset_max_s)
                self._open()
            elif self._state is BreakerState.CLOSED and self._failures >= self._threshold:
                self._open()

    def trip(self) -> None:
        """Open now, whatever the count; from half-open the cooldown doubles as after a failed probe."""
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN:
                self._cooldown_s = min(self._cooldown_s * 2, self._reset_max_s)
            if self._state is not BreakerState.OPEN:
                self._open()

    def seconds_until_probe(self) -> float:
        """0 when a call would be allowed now; else how long until the next probe."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self._cooldown_s - self._clock())

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "state": self._state.value,
                "consecutive_failures": self._failures,
                "cooldown_s": self._cooldown_s,
                "times_opened": self._opened_count,
            }

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._opened_count += 1
        self._move(BreakerState.OPEN)

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new and self._on_transition is not None:
            self._on_transition(old, new)
