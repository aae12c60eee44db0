"""The real Prometheus against the real demo service: every dashboard and rule expression runs, the main panels
have data, the rule groups load and evaluate, and Sieve's exposition passes `promtool check metrics`.

The demo stack runs in-process (tests/demo/conftest.py) with its metrics on a free loopback port; Prometheus
(the Debian binary, 2.42 here) scrapes it every second into a temporary directory, loads
dashboards/alerts/sieve.rules.yml, and listens on another free loopback port. It is always killed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.promql import substitute_grafana_variables
from pipeline.demo.client import DemoClient
from tests.alerts.rules import load_rules
from tests.alerts.tools import RULES_FILE, require_tool, run_tool
from tests.demo.conftest import Running, start_demo, stop_demo

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = REPO / "dashboards" / "grafana"
SCRAPE_INTERVAL_S = 1
# Panels that must show data after a few seconds of load: (dashboard title, panel title).
PANELS_WITH_DATA = [
    ("Sieve / Service overview", "Requests"),  # request rate
    ("Sieve / Service overview", "Calls"),
    ("Sieve / Service overview", "p95 duration"),
    ("Sieve / WebSocket", "Messages in by op"),
    ("Sieve / WebSocket", "Processing p95 by op"),
    ("Sieve / Storage", "Operations"),
    ("Sieve / Storage", "p95 by operation"),  # storage duration
    ("Sieve / Pipeline health", "Spans kept"),  # sampler kept spans
    ("Sieve / Pipeline health", "Traces kept by reason"),
]
# Recording rules that must have a value once evaluated (the request error ratio is 0 without errors, not absent).
RECORDS_WITH_DATA = ["job:sieve_request_errors:ratio_rate5m", "job:sieve_request_latency_over_objective:ratio_rate5m"]


# -- helpers ---------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(url: str, data: dict[str, str] | None = None, timeout_s: float = 5) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(url, data=body, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def query(self, expr: str) -> dict[str, Any]:
        _, body = _http(f"{self.url}/api/v1/query", {"query": expr})
        return json.loads(body)  # type: ignore[no-any-return]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def _prometheus(tmp_path: Path, target: str) -> Iterator[Prometheus]:
    binary = require_tool("prometheus")
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [{"job_name": "sieve", "static_configs": [{"targets": [target]}]}],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = _free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, f"prometheus exited: {server.log()}"
            with contextlib.suppress(OSError):
                if _http(f"{server.url}/-/ready", timeout_s=1)[0] == 200:
                    break
            assert time.monotonic() < deadline, f"prometheus not ready: {server.log()}"
            time.sleep(0.1)
        yield server
    finally:
        process.kill()
        process.wait(timeout=10)


async def _load(url: str, token: str, stop: asyncio.Event) -> None:
    """Two clients taking turns until stopped: message spans, storage operations and sampler decisions."""

    async def client(n: int) -> None:
        conn = await DemoClient.connect(url)
        try:
            await conn.hello(token)
            turn = 0
            while not stop.is_set():
                await conn.call_tool("chat", {"prompt": f"turn {turn}", "continuation_id": f"scrape-{n}"})
                turn += 1
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    await asyncio.gather(client(1), client(2))


def _dashboard_exprs() -> list[tuple[str, str, str]]:
    """``(dashboard title, panel title, expr)`` of every Prometheus target, dashboard variables at their "All"
    value and Grafana's own variables substituted by ``substitute_grafana_variables``."""
    found = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        variables = {v["name"]: v.get("allValue") or ".*" for v in dashboard.get("templating", {}).get("list", [])}
        stack = list(dashboard.get("panels", []))
        while stack:
            panel = stack.pop()
            stack.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                source = target.get("datasource") or panel.get("datasource") or {}
                if source.get("type") != "prometheus" or not target.get("expr"):
                    continue
                expr = target["expr"]
                for name, value in variables.items():
                    expr = re.sub(rf"\$\{{{name}(?::[^}}]*)?\}}|\${name}\b", value, expr)
                found.append((dashboard["title"], panel.get("title", ""), substitute_grafana_variables(expr)))
    return found


def _has_finite_sample(answer: dict[str, Any]) -> bool:
    result = answer.get("data", {}).get("result", [])
    values = [float(s["value"][1]) for s in result] if isinstance(result, list) else []
    return any(math.isfinite(v) for v in values)


# -- the stack -------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    demo: Running
    prometheus: Prometheus


@pytest.fixture
async def stack(migrated_dsn: str, tmp_path: Path) -> AsyncIterator[Stack]:
    demo = await start_demo(migrated_dsn, {"enabled": True, "extensions": False})
    stop = asyncio.Event()
    load = asyncio.create_task(_load(demo.url, demo.settings.service.token, stop))
    try:
        metrics_url = demo.telemetry.metrics_url
        assert metrics_url
        target = urllib.parse.urlsplit(metrics_url).netloc
        with _prometheus(tmp_path, target) as prometheus:
            yield Stack(demo, prometheus)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(load, timeout=10)
        await stop_demo(demo)


async def _wait_for(check: Any, what: str, prometheus: Prometheus, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {prometheus.log()}"
        await asyncio.sleep(0.5)


async def test_dashboards_and_rules_run_against_the_real_prometheus(stack: Stack) -> None:
    prometheus = stack.prometheus
    # A few scrapes with load behind them: rate() needs two samples of a counter that moved.
    await _wait_for(
        lambda: _has_finite_sample(
            prometheus.query('count_over_time(up{job="sieve"}[1m]) >= 5 and on () sum(up{job="sieve"}) == 1')
        ),
        "five successful scrapes",
        prometheus,
    )
    await _wait_for(
        lambda: all(_has_finite_sample(prometheus.query(name)) for name in RECORDS_WITH_DATA),
        "the recording rules to have values",
        prometheus,
    )

    # (a) Every expression parses and evaluates in Prometheus itself.
    exprs = _dashboard_exprs()
    assert len(exprs) >= 40, "the dashboards were not found"
    rules = load_rules()
    answers: dict[tuple[str, str], list[dict[str, Any]]] = {}
    failures = []
    for board, panel, expr in exprs:
        answer = await asyncio.to_thread(prometheus.query, expr)
        answers.setdefault((board, panel), []).append(answer)
        if answer.get("status") != "success":
            failures.append(f"{board} / {panel}: {answer.get('error')}: {expr}")
    for rule in rules:
        answer = await asyncio.to_thread(prometheus.query, rule.expr)
        if answer.get("status") != "success":
            failures.append(f"rule {rule.name}: {answer.get('error')}")
    assert failures == []

    # (b) The panels a user opens first show data.
    missing = [ref for ref in PANELS_WITH_DATA if not any(_has_finite_sample(a) for a in answers.get(ref, []))]
    assert missing == []

    # (c) The rule groups are loaded and every rule has been evaluated without error.
    def rules_healthy() -> bool:
        _, body = _http(f"{prometheus.url}/api/v1/rules")
        groups = json.loads(body)["data"]["groups"]
        return bool(groups) and all(r["health"] == "ok" for g in groups for r in g["rules"])

    await _wait_for(rules_healthy, "every rule to evaluate", prometheus)
    _, body = _http(f"{prometheus.url}/api/v1/rules")
    groups = {g["name"]: g for g in json.loads(body)["data"]["groups"]}
    assert set(groups) == {"sieve-objectives", "sieve-request-ratios", "sieve-alerts"}
    loaded = {r["name"] for g in groups.values() for r in g["rules"]}
    assert loaded == {r.name for r in rules}
    # With the target up and no errors, nothing pages.
    firing = [
        r["name"] for g in groups.values() for r in g["rules"] if r.get("state") == "firing" and r["type"] == "alerting"
    ]
    assert "SieveTargetDown" not in firing
    assert "SieveErrorBudgetFastBurn" not in firing


async def test_exposition_passes_promtool_check_metrics(migrated_dsn: str) -> None:
    promtool = require_tool("promtool")
    demo = await start_demo(migrated_dsn, {"enabled": True, "extensions": False})
    try:
        client = await DemoClient.connect(demo.url)
        await client.hello(demo.settings.service.token)
        for turn in range(3):
            assert (await client.call_tool("chat", {"prompt": f"x{turn}", "continuation_id": "lint"})).ok
        await client.close()
        assert demo.telemetry.metrics_url
        status, exposition = await asyncio.to_thread(_http, demo.telemetry.metrics_url)
        assert status == 200 and "sieve_span_calls_total" in exposition
    finally:
        await stop_demo(demo)
    result = await asyncio.to_thread(run_tool, [promtool, "check", "metrics"], stdin=exposition)
    assert result.returncode == 0, f"promtool check metrics:\n{result.stdout}{result.stderr}"
