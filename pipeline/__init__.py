"""Sieve: an OpenTelemetry observability pipeline for async Python services on WebSocket and Postgres.

``from pipeline import setup`` is the one call a service needs (see :mod:`pipeline.root`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.root import Sieve, noop, setup

__all__ = ["Sieve", "noop", "setup"]


def __getattr__(name: str) -> Any:
    # Lazy: collectors import pipeline.names, which must not pull in the whole SDK wiring.
    if name in __all__:
        from pipeline import root

        return getattr(root, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
