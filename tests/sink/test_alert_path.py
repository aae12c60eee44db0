"""The real alert path: Sieve's metrics endpoint -> Prometheus (the sink breaker rule) -> Alertmanager (the
project's routing) -> a webhook receiver in this test. A frozen database (every Postgres process SIGSTOPped)
makes SieveSinkBreakerOpen fire and reach the webhook; after the thaw it resolves, and that reaches it too.

Real parts throughout: a sink writing under a steady load to a Postgres the test may freeze (``freezable_pg``),
its self-metrics served by Sieve's ``TelemetryServer`` through OpenTelemetry's Prometheus reader, Debian's
``prometheus`` and ``prometheus-alertmanager`` binaries (``tests/alerting/servers.py``). What is shortened, so
that the test takes seconds and not minutes:

* the rule's ``for:`` (3 m) and the routes' waits (``group_wait`` 30 s, ``group_interval`` 5 m) become 500 ms in
  test-only copies, and Prometheus scrapes and evaluates every 500 ms; the alert's expression, labels and
  annotations are read from dashboards/alerts/sieve.rules.yml and the routing tree from
  dashboards/alertmanager/alertmanager.yml, as they are;
* the expression looks back 2 minutes (``min_over_time(...[2m]) >= 1``: never closed for 2 minutes). Once
  Prometheus has seen the breaker leave ``closed``, the test deletes the earlier, healthy samples through
  Prometheus' admin API, which is what 2 minutes of waiting would do to the window. Until then the test checks
  that the rule does *not* fire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from pipeline.export.postgres import PostgresSink
from pipeline.health import ComponentState, Readiness
from pipeline.http import TelemetryServer
from tests.alerting.servers import Process, Webhook, alertmanager, alertmanager_binary, http, prometheus
from tests.alerts.rules import load_rules
from tests.alerts.tools import REPO, require_tool

from .conftest import FreezablePostgres, fast_settings
from .freeze import frozen

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180)]

ALERT = "SieveSinkBreakerOpen"
ALERTMANAGER_CONFIG = REPO / "dashboards" / "alertmanager" / "alertmanager.yml"
HANG_GUARD_S = 60


def rules_for_the_test(path: Path) -> Path:
    """A rule file with the real alert, only its ``for:`` shortened."""
    (rule,) = [r for r in load_rules() if r.name == ALERT]
    copy = {**rule.raw, "for": "500ms"}
    assert copy["expr"] == rule.expr  # the real expression, as read from the rule file
    path.write_text(yaml.safe_dump({"groups": [{"name": "alert-path", "rules": [copy]}]}))
    return path


def alertmanager_config_for_the_test(webhook_url: str) -> dict[str, Any]:
    """The project's routing tree with short waits, every receiver delivering to the test's webhook."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    for route in [config["route"], *config["route"].get("routes", [])]:
        route["group_wait"] = route["group_interval"] = "500ms"
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": f"{webhook_url}/{receiver['name']}", "send_resolved": True}]
    return config


class Feeder(threading.Thread):
    """The application: a steady stream of events, so the sink has writes to fail when the database hangs."""

    def __init__(self, sink: PostgresSink) -> None:
        super().__init__(name="feeder", daemon=True)
        self.sink = sink
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.wait(0.005):
            self.sink.record_event("alert-path", {"i": i})
            i += 1


def wait_until(check: Callable[[], bool], what: str, *logs: Process) -> None:
    hang_guard = time.monotonic() + HANG_GUARD_S
    while not check():
        assert time.monotonic() < hang_guard, f"hang guard: {what}\n" + "\n".join(p.log() for p in logs)
        time.sleep(0.2)


def result(answer: dict[str, Any]) -> list[dict[str, Any]]:
    assert answer["status"] == "success", answer
    return answer["data"]["result"]  # type: ignore[no-any-return]


@pytest.fixture
def binaries() -> None:
    """Skip (or in CI fail) before any Postgres is started when a binary is missing."""
    require_tool("prometheus")
    alertmanager_binary()


@pytest.fixture
def sieve(binaries: None, freezable_dsn: str, tmp_path: Path) -> Iterator[tuple[PostgresSink, TelemetryServer]]:
    """A sink with its self-metrics on Sieve's /metrics endpoint and its health on /readyz."""
    registry = CollectorRegistry(auto_describe=True)
    meters = MeterProvider(
        metric_readers=[PrometheusMetricReader(registry=registry)],
        resource=Resource({"service.name": "alert-path"}),
    )
    settings = fast_settings(tmp_path / "spool", write_timeout_s=1.0, statement_timeout_s=0.8, probe_timeout_s=0.5)
    sink = PostgresSink(freezable_dsn, settings, meter_provider=meters)
    readiness = Readiness()
    readiness.register("postgres_sink", lambda: ComponentState(bool(sink.health()["ready"]), sink.health()))
    server = TelemetryServer("127.0.0.1", 0, registry, readiness).start()
    feeder = Feeder(sink)
    feeder.start()
    try:
        yield sink, server
    finally:
        feeder.stop.set()
        feeder.join(5)
        server.stop()
        sink.shutdown(5)
        meters.shutdown()


def test_a_frozen_database_fires_the_breaker_alert_at_the_webhook_and_it_resolves(
    sieve: tuple[PostgresSink, TelemetryServer], freezable_pg: FreezablePostgres, tmp_path: Path
) -> None:
    sink, server = sieve
    with Webhook() as webhook, alertmanager(tmp_path, alertmanager_config_for_the_test(webhook.url)) as am:
        config = {
            "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
            "rule_files": [str(rules_for_the_test(tmp_path / "rules.yml"))],
            "scrape_configs": [{"job_name": "sieve", "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.url.removeprefix("http://")]}]}]},
        }
        with prometheus(tmp_path, config, "--web.enable-admin-api", "--rules.alert.resend-delay=1s") as prom:

            def query(expr: str) -> list[dict[str, Any]]:
                return result(prom.get("/api/v1/query", {"query": expr}))

            def alert_state() -> str:
                rules = [r for g in prom.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]]
                (rule,) = [r for r in rules if r["name"] == ALERT]
                assert rule["health"] == "ok", rule
                return str(rule["state"])

            # Healthy: Prometheus scrapes the closed breaker and the rule is evaluated, not firing.
            wait_until(lambda: bool(query('sieve_sink_breaker_state{job="sieve"} == 0')), "a healthy scrape", prom)
            wait_until(lambda: sink.stats()["written"].get("events", 0) > 0, "rows written", prom)
            assert http(f"{server.url}/readyz")[0] == 200
            wait_until(lambda: alert_state() == "inactive", "the rule evaluated", prom)

            with frozen(freezable_pg):
                # The sink notices: breaker open, not ready on Sieve's own /readyz.
                # (Not ready comes first: the write under way stalls before its deadline opens the breaker.)
                wait_until(lambda: http(f"{server.url}/readyz")[0] == 503, "/readyz says not ready", prom)
                wait_until(lambda: sink.health()["breaker"] != "closed", "the breaker opens", prom)
                assert sink.health()["stalled"] and http(f"{server.url}/readyz")[0] == 503
                wait_until(lambda: bool(query('sieve_sink_breaker_state{job="sieve"} >= 1')), "an open scrape", prom)
                assert alert_state() == "inactive"  # the healthy samples still in the 2 m window hold it back
                # Stand in for the 2 minutes: delete the samples from before the breaker left "closed".
                samples = query('sieve_sink_breaker_state{job="sieve"}[5m]')[0]["values"]
                last_closed = max(float(t) for t, v in samples if float(v) == 0)
                prom.get(
                    "/api/v1/admin/tsdb/delete_series",
                    {"match[]": 'sieve_sink_breaker_state{job="sieve"}', "end": str(last_closed)},
                    method="POST",
                )
                firing = webhook.wait_for("firing", ALERT, HANG_GUARD_S)
                assert alert_state() == "firing"
            # Thawed: the probe closes the breaker, the rule resolves, Alertmanager says so.
            wait_until(lambda: sink.health()["breaker"] == "closed", "the breaker closes after the thaw", prom)
            resolved = webhook.wait_for("resolved", ALERT, HANG_GUARD_S)
            wait_until(lambda: http(f"{server.url}/readyz")[0] == 200, "/readyz ready again", prom)

    (alert,) = [a for a in firing.body["alerts"] if a["labels"]["alertname"] == ALERT]
    assert firing.receiver_path == "/ticket"  # routed by severity, as in the project's Alertmanager config
    assert alert["labels"]["severity"] == "ticket" and alert["labels"]["job"] == "sieve"
    assert alert["annotations"]["runbook_url"].endswith("#sievesinkbreakeropen")
    assert resolved.receiver_path == "/ticket"
    print(f"alert path: {ALERT} fired and resolved at the webhook; sink stats {sink.stats()['breaker']}")
