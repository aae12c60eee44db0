"""The collector tier's configuration (otel-config.yaml), checked for structure since no collector binary runs here.

What a collector would refuse at start (a pipeline naming an undefined component) and what would make the tier
silently wrong (spans of one trace reaching different samplers, a sampler fed by the wrong receiver, a memory
limiter that is not first) are asserted here. The policies themselves are tests/sampling's business.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG_PATH = REPO / "otel-config.yaml"
SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")
# Component types of the contrib distribution this file may use (type = the part before "/").
KNOWN_TYPES = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "tail_sampling", "batch"},
    "exporters": {"loadbalancing", "otlp", "otlp_grpc", "prometheus", "debug"},
    "connectors": {"spanmetrics"},
    "extensions": {"health_check"},
}
# ${env:NAME} or ${env:NAME:-default}: the collector's environment expansion.
ENV_REFERENCE = re.compile(r"\$\{env:([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    document = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _pipelines(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    pipelines = config["service"]["pipelines"]
    assert pipelines, "no pipelines"
    return pipelines


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _expand_defaults(value: str) -> str:
    """Replace ${env:NAME:-default} with its default, as the collector does when NAME is unset."""
    return ENV_REFERENCE.sub(lambda m: m.group(2) or "", value)


def test_every_component_a_pipeline_names_is_defined(config: dict[str, Any]) -> None:
    connectors = set(config.get("connectors") or {})
    for name, pipeline in _pipelines(config).items():
        assert set(pipeline) <= {"receivers", "processors", "exporters"}, name
        assert pipeline.get("receivers") and pipeline.get("exporters"), f"{name} needs receivers and exporters"
        for receiver in pipeline["receivers"]:
            assert receiver in config["receivers"] or receiver in connectors, f"{name}: {receiver} undefined"
        for processor in pipeline.get("processors", []):
            assert processor in config["processors"], f"{name}: {processor} undefined"
        for exporter in pipeline["exporters"]:
            assert exporter in config["exporters"] or exporter in connectors, f"{name}: {exporter} undefined"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]


def test_every_defined_component_is_used_and_of_a_known_type(config: dict[str, Any]) -> None:
    used: dict[str, set[str]] = {section: set() for section in SECTIONS}
    for pipeline in _pipelines(config).values():
        for section in ("receivers", "processors", "exporters"):
            used[section].update(pipeline.get(section, []))
    used["extensions"].update(config["service"].get("extensions", []))
    connectors = set(config.get("connectors") or {})
    for section in SECTIONS:
        for name in config.get(section) or {}:
            assert name.split("/")[0] in KNOWN_TYPES[section], f"{section}.{name}: unknown type"
            if section == "connectors":
                # A connector is an exporter of one pipeline and a receiver of another.
                assert name in used["exporters"] and name in used["receivers"], f"connector {name} half-wired"
            else:
                assert name in used[section] or name in connectors, f"{section}.{name} is defined but unused"


def test_memory_limiter_is_first_in_every_pipeline(config: dict[str, Any]) -> None:
    for name, pipeline in _pipelines(config).items():
        assert pipeline.get("processors", [])[:1] == ["memory_limiter"], name
    limiter = config["processors"]["memory_limiter"]
    assert limiter["check_interval"]
    assert 0 < limiter["spike_limit_percentage"] < limiter["limit_percentage"] <= 100


def test_front_tier_routes_by_trace_id_to_the_sampling_tier_of_every_replica(config: dict[str, Any]) -> None:
    pipelines = _pipelines(config)
    balancer = config["exporters"]["loadbalancing"]
    assert balancer["routing_key"] == "traceID"
    assert "endpoint" not in balancer["protocol"]["otlp"], "the exporter sets each backend's endpoint itself"
    dns = balancer["resolver"]["dns"]
    assert set(balancer["resolver"]) == {"dns"}, "a static list would not follow the replicas"
    assert _expand_defaults(dns["hostname"]), "the DNS name needs a default"

    front = [n for n, p in pipelines.items() if "loadbalancing" in p["exporters"]]
    assert len(front) == 1
    front_pipeline = pipelines[front[0]]
    assert front[0].startswith("traces")
    assert "tail_sampling" not in front_pipeline.get("processors", []), "the front tier must not sample"
    assert front_pipeline["exporters"] == ["loadbalancing"]

    # The balancer's port is a gRPC receiver (the exporter speaks OTLP gRPC) that feeds exactly the sampling
    # pipeline, and that receiver is not the one services send to (or spans would loop through the balancer).
    target = [
        name
        for name, receiver in config["receivers"].items()
        if "grpc" in (receiver.get("protocols") or {})
        and _port(receiver["protocols"]["grpc"]["endpoint"]) == int(dns["port"])
    ]
    assert len(target) == 1, f"no single gRPC receiver on port {dns['port']}"
    feeds = [n for n, p in pipelines.items() if target[0] in p["receivers"]]
    assert feeds and all("tail_sampling" in pipelines[n]["processors"] for n in feeds)
    assert target[0] not in front_pipeline["receivers"]


def test_sampling_tier_is_limiter_sampler_batch_to_the_trace_store(config: dict[str, Any]) -> None:
    pipelines = _pipelines(config)
    sampling = [n for n, p in pipelines.items() if "tail_sampling" in p.get("processors", [])]
    assert len(sampling) == 1
    pipeline = pipelines[sampling[0]]
    assert pipeline["processors"] == ["memory_limiter", "tail_sampling", "batch"]
    stores = [e for e in pipeline["exporters"] if e.split("/")[0] in {"otlp", "otlp_grpc"}]
    assert stores, "kept traces must reach a trace store over OTLP"
    for store in stores:
        endpoint = _expand_defaults(config["exporters"][store]["endpoint"])
        assert endpoint.startswith("jaeger:"), "the trace store is the compose stack's Jaeger by default"
        assert _port(endpoint) == 4317


def test_metrics_reach_prometheus_with_exemplars(config: dict[str, Any]) -> None:
    pipelines = _pipelines(config)
    exporter = config["exporters"]["prometheus"]
    assert exporter["enable_open_metrics"] is True, "OpenMetrics is the only text format carrying exemplars"
    metric_pipelines = [n for n, p in pipelines.items() if "prometheus" in p["exporters"]]
    assert metric_pipelines and all(n.split("/")[0] == "metrics" for n in metric_pipelines)


def test_services_can_send_every_signal_sieve_exports(config: dict[str, Any]) -> None:
    """Sieve posts /v1/traces, /v1/metrics and /v1/logs to OTLP/HTTP: each needs a pipeline on that receiver."""
    otlp = config["receivers"]["otlp"]["protocols"]
    assert _port(otlp["http"]["endpoint"]) == 4318
    assert _port(otlp["grpc"]["endpoint"]) == 4317
    signals = {name.split("/")[0] for name, p in _pipelines(config).items() if "otlp" in p["receivers"]}
    assert signals == {"traces", "metrics", "logs"}


def test_environment_references_are_well_formed(config: dict[str, Any]) -> None:
    text = CONFIG_PATH.read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for reference in re.findall(r"\$\{[^}]*\}", code):
        match = ENV_REFERENCE.fullmatch(reference)
        assert match, f"{reference}: use ${{env:NAME}} or ${{env:NAME:-default}}"
        assert match.group(1) in text.split("receivers:")[0], f"{match.group(1)} is not documented in the header"


def test_tail_sampling_block_is_the_one_sieve_loads() -> None:
    from pipeline.sampling import default_config, load_tail_sampling_file

    assert load_tail_sampling_file(CONFIG_PATH).policies == default_config().policies
