"""Sieve's collectors as OpenTelemetry instrumentors, found by ``opentelemetry-instrument`` through entry points.

- :class:`WebSocketsInstrumentor` (entry point ``websockets``): every server made with ``websockets.asyncio``'s
  ``serve()`` (or ``unix_serve()``) gets a handshake span, one root span per inbound message (current while the
  handler processes it, ended at the next ``recv()``), measured sends and the connection metrics. It patches
  ``serve`` itself, so a server created before ``instrument()`` ran is not instrumented.
- :class:`StorageInstrumentor` (entry point ``sieve_storage``): the contrib asyncpg and psycopg instrumentations
  (statement parameters off) plus statement fingerprints on their spans.

Under Sieve's configurator (``pipeline.distro``) both use the collectors the composition root built from the
settings (:func:`use`); on their own they build them on the global providers with default options.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

# The module opens with a file-level "# type: ignore": mypy sees none of its names (BaseInstrumentor is Any).
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from collectors.storage import StorageTelemetry, instrument_drivers, uninstrument_drivers
from collectors.websocket import WebSocketInstrumentation

_configured: dict[str, Any] = {}


def use(*, websocket: WebSocketInstrumentation | None = None, storage: StorageTelemetry | None = None) -> None:
    """Have the instrumentors use these collectors (the configurator calls this; None forgets them)."""
    for key, value in (("websocket", websocket), ("storage", storage)):
        if value is None:
            _configured.pop(key, None)
        else:
            _configured[key] = value


class WebSocketsInstrumentor(BaseInstrumentor):
    """Instruments ``websockets.asyncio.server.serve`` (websockets 14 or newer)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("websockets >= 14",)

    def _instrument(self, **kwargs: Any) -> None:
        from websockets.asyncio import server

        ws: WebSocketInstrumentation = (
            kwargs.get("instrumentation")
            or _configured.get("websocket")
            or WebSocketInstrumentation(kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        )
        original = server.serve

        def serve(handler: Any, *args: Any, **options: Any) -> Any:
            options.update(ws.serve_kwargs(options.pop("process_request", None), options.pop("process_response", None)))
            options["create_connection"] = ws.connection_class(
                options.get("create_connection") or server.ServerConnection
            )
            return original(ws.auto_handler(handler), *args, **options)

        serve.__wrapped__ = original  # type: ignore[attr-defined]  # a function takes attributes; mypy says no
        server.serve = serve  # unix_serve() calls serve() through the module, so it is covered too

    def _uninstrument(self, **kwargs: Any) -> None:
        from websockets.asyncio import server

        original = getattr(server.serve, "__wrapped__", None)
        if original is not None:
            server.serve = original


class StorageInstrumentor(BaseInstrumentor):
    """The asyncpg and psycopg driver spans, with Sieve's statement fingerprints on them."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # either driver may be missing; each contrib instrumentation checks its own

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        if "storage" not in _configured:
            # Registers the fingerprint stamper on the provider; repository operations stay the app's choice.
            _configured["storage"] = StorageTelemetry(tracer_provider, kwargs.get("meter_provider"))
        instrument_drivers(tracer_provider, capture_parameters=bool(kwargs.get("capture_parameters", False)))

    def _uninstrument(self, **kwargs: Any) -> None:
        uninstrument_drivers()
