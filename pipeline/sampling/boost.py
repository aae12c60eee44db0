"""The error signal: a per-key error-rate envelope that rises within seconds and decays with a half-life.

Per key (``(service, root operation)``) the signal keeps exponentially decayed counts of traces and error traces
over a short ``window_s`` half-life. When the error count exceeds what ``baseline_error_rate`` predicts by more
than ``significance`` standard deviations (Poisson), the instant boost is ``clamp(rate / baseline, 1,
max_boost)``; otherwise 1, so ordinary noise at the baseline rate does not raise the envelope. The published boost
is an envelope: it jumps up with the instant value and otherwise decays towards 1 with ``half_life_s``, so a burst
raises the keep probability of that key's non-error traces at once and the raise fades smoothly after the burst
ends.

The log sampler reads the same object (``boost(key, now)``, ``level(now)``), so logs of a failing operation are
kept more while it fails. The clock is passed in; nothing here sleeps or reads time.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

Key = tuple[str, str]


@dataclass(frozen=True)
class ErrorSignalSettings:
    """How the error signal reacts: the error rate it takes as normal, how far and how fast it boosts, and for how many
    keys."""

    baseline_error_rate: float = 0.01
    max_boost: float = 10.0
    half_life_s: float = 60.0
    window_s: float = 2.0
    max_keys: int = 256
    significance: float = 4.0
    min_errors: float = 3.0  # decayed error count needed before any boost: one error is not a burst


class _KeyState:
    __slots__ = ("envelope", "errors", "last", "total")

    def __init__(self, now: float) -> None:
        self.total = 0.0
        self.errors = 0.0
        self.envelope = 1.0
        self.last = now


class ErrorSignal:
    """Exponentially weighted error-rate boost per key. Thread-safe: the log sampler reads it from any thread."""

    def __init__(self, settings: ErrorSignalSettings | None = None) -> None:
        self.settings = settings or ErrorSignalSettings()
        self._keys: OrderedDict[Key, _KeyState] = OrderedDict()
        self._lock = threading.Lock()

    def _decayed_envelope(self, state: _KeyState, now: float) -> float:
        envelope = state.envelope
        dt = now - state.last
        if envelope == 1.0 or dt <= 0.0:
            return envelope
        return 1.0 + (envelope - 1.0) * math.pow(0.5, dt / self.settings.half_life_s)

    def observe(self, key: Key, error: bool, now: float) -> None:
        """Record one finished trace of ``key``."""
        s = self.settings
        with self._lock:
            state = self._keys.get(key)
            if state is None:
                state = _KeyState(now)
                self._keys[key] = state
                if len(self._keys) > s.max_keys:
                    self._keys.popitem(last=False)  # forget the least recently observed key
            else:
                self._keys.move_to_end(key)
            dt = now - state.last
            envelope = self._decayed_envelope(state, now)
            if dt > 0.0:  # a worker cycle decides many traces at one instant: decay once
                decay = math.pow(0.5, dt / s.window_s)
                state.total *= decay
                state.errors *= decay
                state.last = now
            state.total += 1.0
            if error:
                state.errors += 1.0
            if state.errors >= s.min_errors:  # one error is not a burst: most traces stop here
                expected = state.total * s.baseline_error_rate
                if state.errors - expected >= s.significance * math.sqrt(expected):
                    envelope = max(envelope, min(s.max_boost, max(1.0, state.errors / expected)))
            # Close enough to 1 is 1: an exact 1 lets readers skip the decay arithmetic.
            state.envelope = 1.0 if envelope < 1.0005 else envelope

    def boost(self, key: Key, now: float) -> float:
        """The current boost factor of ``key``: 1 (no boost) up to ``max_boost``."""
        state = self._keys.get(key)  # one dict read: atomic, no lock needed
        if state is None or state.envelope == 1.0:
            return 1.0
        with self._lock:
            return self._decayed_envelope(state, now)

    def level(self, now: float) -> float:
        """The overall level: the highest boost across keys (1 when nothing is failing)."""
        with self._lock:
            return max((self._decayed_envelope(s, now) for s in self._keys.values()), default=1.0)

    def snapshot(self, now: float) -> dict[str, float]:
        """Boost per key as ``"service/operation"`` -> factor, for reports."""
        with self._lock:
            return {f"{k[0]}/{k[1]}": round(self._decayed_envelope(s, now), 3) for k, s in self._keys.items()}
