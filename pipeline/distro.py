"""Sieve the OpenTelemetry way: ``opentelemetry-instrument python app.py`` runs the whole Sieve pipeline.

``opentelemetry-instrument`` (from ``opentelemetry-instrumentation``) finds, through entry points:

1. the distro (``opentelemetry_distro``: :class:`SieveDistro`), which picks Sieve's configurator;
2. the configurator (``opentelemetry_configurator``: :class:`SieveConfigurator`), which calls
   :func:`pipeline.setup` with the settings from ``SIEVE_*`` / ``OTEL_*`` / ``SIEVE_CONFIG``: tail sampling, span
   metrics, logs following their traces, ``/metrics`` and ``/readyz``, the Postgres sink when a DSN is set;
3. the instrumentors (``opentelemetry_instrumentor``): ``collectors.instrumentors.WebSocketsInstrumentor``,
   ``StorageInstrumentor`` and every contrib instrumentation installed (asyncpg, psycopg, ...).

At exit (and on SIGTERM, which the configurator turns into the same clean stop as Ctrl-C when the application
has no handler of its own) the pipeline decides what it holds and flushes it.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
from typing import Any

# The module opens with a file-level "# type: ignore": mypy sees none of its names (BaseDistro is Any).
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

from collectors import instrumentors
from pipeline.config import load_settings, set_environment_default
from pipeline.errors import SieveError
from pipeline.root import Sieve, setup

log = logging.getLogger(__name__)
CONFIGURATOR_NAME = "sieve"
_state: dict[str, Sieve] = {}


class SieveDistro(BaseDistro):
    """Chooses Sieve's configurator even when another distro's is installed too."""

    def _configure(self, **kwargs: Any) -> None:
        set_environment_default("OTEL_PYTHON_CONFIGURATOR", CONFIGURATOR_NAME)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        """Instrument unless the configurator already did (Sieve's root turns on the database drivers itself)."""
        instrumentor = entry_point.load()()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(**kwargs)


class SieveConfigurator(_BaseConfigurator):
    """Builds the Sieve pipeline from settings and installs OpenTelemetry's global providers."""

    def _configure(self, **kwargs: Any) -> None:
        if "sieve" in _state:
            return
        try:
            sieve = setup(load_settings(), install_globals=True)
        except SieveError as exc:
            # A bad setting must not take the application down with a traceback: say it once, run untraced.
            log.error("sieve: telemetry is off: %s", exc)
            return
        _state["sieve"] = sieve
        instrumentors.use(websocket=sieve.websocket, storage=sieve.storage)
        atexit.register(sieve.shutdown)
        _stop_cleanly_on_sigterm()


def current() -> Sieve | None:
    """The pipeline the configurator built in this process, if any."""
    return _state.get("sieve")


def _stop_cleanly_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd, Kubernetes) stops like Ctrl-C: the application unwinds (``asyncio.run``
    cancels its tasks), the atexit hook flushes, and the exit status is 143 as for a plain SIGTERM.

    Only when the application left SIGTERM at its default (which kills without running atexit hooks) and only
    from the main thread, where Python delivers signals.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
