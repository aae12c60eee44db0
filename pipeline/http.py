"""One loopback HTTP endpoint for Prometheus and orchestrators: ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` is prometheus_client's own WSGI app over the registry that OpenTelemetry's Prometheus reader
fills: Sieve does not re-implement exposition. The server runs in its own daemon threads (prometheus_client's
threading WSGI server), so a scrape never runs on the application's event loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from pipeline.config import env_names
from pipeline.errors import ListenError
from pipeline.health import Readiness


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood stderr; access logs belong to a proxy, not here."""


class TelemetryServer:
    """The loopback HTTP server of ``/metrics``, ``/healthz`` and ``/readyz``, on its own threads."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, readiness: Readiness) -> None:
        self._metrics_app: WSGIApplication = make_wsgi_app(registry)
        self._readiness = readiness
        try:
            self._server = make_server(host, port, self._app, ThreadingWSGIServer, handler_class=_QuietHandler)
        except OSError as exc:  # port taken, privileged port, address not on this machine
            setting = f"prometheus.port, env {' or '.join(env_names(('prometheus', 'port')))}"
            raise ListenError(host, port, setting, exc) from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="sieve-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> TelemetryServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self._metrics_app(environ, start_response)
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "alive"})
        if path == "/readyz":
            ready, body = self._readiness.report()
            return _json(start_response, "200 OK" if ready else "503 Service Unavailable", body)
        return _json(
            start_response,
            "404 Not Found",
            {"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]},
        )


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
