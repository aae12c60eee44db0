"""Real Prometheus and Alertmanager processes for a test, and a webhook receiver served by the test itself.

Each listens on a free loopback port, keeps its data in the test's temporary directory, and is killed at the
end. Alertmanager runs without clustering (no port 9094 shared with anything else on the machine).
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerts.tools import require_tool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    url: str, data: dict[str, str] | None = None, method: str | None = None, timeout_s: float = 5
) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class Process:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def get(self, path: str, data: dict[str, str] | None = None, method: str | None = None) -> Any:
        status, body = http(f"{self.url}{path}", data, method)
        assert status < 300, f"{self.name} {path}: {status} {body[:500]}"
        return json.loads(body) if body else None


@contextlib.contextmanager
def _serve(name: str, args: list[str], url: str, log_path: Path) -> Iterator[Process]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server = Process(name, url, process, log_path)
    try:
        hang_guard = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"{name} exited: {server.log()}"
            with contextlib.suppress(OSError):
                if http(f"{url}/-/ready", timeout_s=1)[0] == 200:
                    break
            assert time.monotonic() < hang_guard, f"{name} not ready: {server.log()}"
            time.sleep(0.1)
        yield server
    finally:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def prometheus(tmp_path: Path, config: dict[str, Any], *flags: str) -> Iterator[Process]:
    binary = require_tool("prometheus")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    args = [
        binary,
        f"--config.file={path}",
        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        *flags,
    ]
    with _serve("prometheus", args, f"http://127.0.0.1:{port}", tmp_path / "prometheus.log") as server:
        yield server


def alertmanager_binary() -> str:
    """Debian installs it as ``prometheus-alertmanager``; upstream calls it ``alertmanager``."""
    found = shutil.which("alertmanager")
    return found or require_tool("prometheus-alertmanager")


@contextlib.contextmanager
def alertmanager(tmp_path: Path, config: dict[str, Any]) -> Iterator[Process]:
    binary = alertmanager_binary()
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    args = [
        binary,
        f"--config.file={path}",
        f"--storage.path={tmp_path / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: a lone instance, no port shared with other tests
        "--log.level=warn",
    ]
    with _serve("alertmanager", args, f"http://127.0.0.1:{port}", tmp_path / "alertmanager.log") as server:
        yield server


@dataclass(frozen=True)
class Notification:
    receiver_path: str  # the URL path Alertmanager posted to, i.e. which receiver
    body: dict[str, Any]


class Webhook:
    """An HTTP server on loopback that records every JSON POST (Alertmanager's webhook_configs target)."""

    def __init__(self) -> None:
        self.received: queue.Queue[Notification] = queue.Queue()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.put(Notification(self.path, json.loads(self.rfile.read(length) or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reports what it received."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, status: str, alertname: str, timeout_s: float) -> Notification:
        """The first notification with this status carrying this alert (a hang guard, not a timing check)."""
        hang_guard = time.monotonic() + timeout_s
        while True:
            remaining = hang_guard - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"hang guard: no {status} notification for {alertname} reached the webhook")
            try:
                note = self.received.get(timeout=remaining)
            except queue.Empty:
                continue
            alerts = note.body.get("alerts", [])
            if note.body.get("status") == status and any(
                a.get("labels", {}).get("alertname") == alertname and a.get("status") == status for a in alerts
            ):
                return note
