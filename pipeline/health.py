"""Readiness as a set of named checks, each answering for one component.

``/healthz`` says the process is alive; ``/readyz`` asks every registered check and answers 200 only when all
are ready. A check must be quick and must not raise: one that raises is reported as not ready with the error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ComponentState:
    """One component's answer to a readiness check, with details for ``/readyz``."""

    ready: bool
    detail: dict[str, Any] = field(default_factory=dict)


Check = Callable[[], ComponentState]


class Readiness:
    """The named readiness checks ``/readyz`` asks; ready when every one is."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()

    def register(self, name: str, check: Check) -> None:
        with self._lock:
            self._checks[name] = check

    def unregister(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def report(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            checks = dict(self._checks)
        components: dict[str, Any] = {}
        for name, check in sorted(checks.items()):
            try:
                state = check()
            except Exception as exc:  # a broken check is an unready component, not a broken endpoint
                state = ComponentState(False, {"error": f"{type(exc).__name__}: {exc}"})
            components[name] = {"ready": state.ready, **state.detail}
        ready = all(c["ready"] for c in components.values())
        return ready, {"status": "ready" if ready else "not ready", "components": components}


class CachedCheck:
    """Run an expensive check (a database round trip) at most once per ``ttl_s``."""

    def __init__(self, check: Check, ttl_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._check = check
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: ComponentState | None = None
        self._at = 0.0

    def __call__(self) -> ComponentState:
        with self._lock:
            now = self._clock()
            if self._value is None or now - self._at >= self._ttl_s:
                try:
                    self._value = self._check()
                except Exception as exc:
                    self._value = ComponentState(False, {"error": f"{type(exc).__name__}: {exc}"})
                self._at = now
            return self._value
