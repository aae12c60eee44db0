"""Loading the Collector's tail_sampling block: keys, defaults, durations, errors, and the repository file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.sampling import default_config, load_tail_sampling, load_tail_sampling_file, parse_duration
from pipeline.sampling.config import TailSamplingConfig
from pipeline.sampling.policies import (
    EXTENSION_TYPES,
    UPSTREAM_TYPES,
    And,
    Composite,
    ErrorBoost,
    Latency,
    NumericAttribute,
    Probabilistic,
    RateAllocation,
    StringAttribute,
)

REPO = Path(__file__).resolve().parents[2]
README_EXAMPLE = """
decision_wait: 10s
num_traces: 100
expected_new_traces_per_sec: 10
decision_cache:
  sampled_cache_size: 100_000
  non_sampled_cache_size: 100_000
policies:
  [
    {name: test-policy-1, type: always_sample},
    {name: test-policy-2, type: latency, latency: {threshold_ms: 5000, upper_threshold_ms: 10000}},
    {name: test-policy-3, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 50, max_value: 100}},
    {name: test-policy-4, type: probabilistic, probabilistic: {sampling_percentage: 10}},
    {name: test-policy-5, type: status_code, status_code: {status_codes: [ERROR, UNSET]}},
    {name: test-policy-6, type: string_attribute, string_attribute: {key: key2, values: [value1, value2]}},
    {name: test-policy-7, type: string_attribute,
     string_attribute: {key: key2, values: [value1, val*], enabled_regex_matching: true, cache_max_size: 10}},
    {name: test-policy-8, type: rate_limiting, rate_limiting: {spans_per_second: 35}},
    {name: test-policy-9, type: bytes_limiting, bytes_limiting: {bytes_per_second: 1024000, burst_capacity: 2048000}},
    {name: test-policy-10, type: span_count, span_count: {min_spans: 2, max_spans: 20}},
    {name: test-policy-11, type: trace_state, trace_state: { key: key3, values: [value1, value2] }},
    {name: test-policy-12, type: boolean_attribute, boolean_attribute: {key: key4, value: true}},
    {name: test-policy-13, type: trace_flags},
    {name: test-policy-14, type: ottl_condition, ottl_condition: {error_mode: ignore,
     span: ["attributes[\\"test_attr_key_1\\"] == \\"test_attr_val_1\\""], spanevent: ["name != \\"x\\""]}},
    {name: and-policy-1, type: and, and: {and_sub_policy: [
        {name: test-and-policy-1, type: numeric_attribute,
         numeric_attribute: { key: key1, min_value: 50, max_value: 100 }},
        {name: test-and-policy-2, type: string_attribute,
         string_attribute: { key: key2, values: [ value1, value2 ] }}]}},
    {name: not-policy-1, type: not, not: {not_sub_policy: {name: inner, type: status_code,
        status_code: {status_codes: [ERROR]}}}},
    {name: drop-policy-1, type: drop, drop: {drop_sub_policy: [
        {name: test-drop-policy-1, type: string_attribute,
         string_attribute: {key: url.path, values: [\\/health, \\/metrics], enabled_regex_matching: true}}]}},
    {name: composite-policy-1, type: composite, composite: {
        max_total_spans_per_second: 1000,
        policy_order: [test-composite-policy-1, test-composite-policy-2, test-composite-policy-3],
        composite_sub_policy: [
          {name: test-composite-policy-1, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 50}},
          {name: test-composite-policy-2, type: string_attribute,
           string_attribute: {key: key2, values: [value1, value2]}},
          {name: test-composite-policy-3, type: always_sample}],
        rate_allocation: [{policy: test-composite-policy-1, percent: 50},
                          {policy: test-composite-policy-2, percent: 25}]}},
  ]
"""


def test_readme_example_loads_every_upstream_type() -> None:
    config = load_tail_sampling(yaml.safe_load(README_EXAMPLE))
    types = {type(p).TYPE for p in config.policies}
    assert types == set(UPSTREAM_TYPES)
    assert [w for w in config.warnings if "ottl_condition" in w]  # accepted, never evaluated: said so
    assert config.decision_wait_s == 10.0
    assert config.num_traces == 100
    assert config.sampled_cache_size == 100_000
    by_name = {p.name: p for p in config.policies}
    assert by_name["test-policy-2"] == Latency(name="test-policy-2", threshold_ms=5000, upper_threshold_ms=10000)
    assert by_name["and-policy-1"] == And(
        name="and-policy-1",
        and_sub_policy=(
            NumericAttribute(name="test-and-policy-1", key="key1", min_value=50, max_value=100),
            StringAttribute(name="test-and-policy-2", key="key2", values=("value1", "value2")),
        ),
    )
    composite = by_name["composite-policy-1"]
    assert isinstance(composite, Composite)
    assert composite.rate_allocation[0] == RateAllocation(policy="test-composite-policy-1", percent=50)
    assert composite.allocations()["test-composite-policy-3"] == 250.0


def test_in_process_defaults_differ_from_the_collector_on_purpose() -> None:
    config = load_tail_sampling({"policies": [{"name": "a", "type": "always_sample"}]})
    assert config.decision_wait_s == 10.0
    assert config.decision_wait_after_root_received_s == 2.0
    assert config.num_traces == 5000
    assert config.sampled_cache_size == 10_000
    assert config.non_sampled_cache_size == 100_000


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2s", 2.0),
        ("100ms", 0.1),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("0", 0.0),
        ("250us", 0.00025),
        ("10ns", 1e-8),
        ("1h2m3s4ms", 3723.004),
        (2_000_000_000, 2.0),
    ],
)
def test_durations_like_go(text: Any, seconds: float) -> None:
    assert parse_duration("x", text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["2", "s", "-1s", "2 s", "2sec", "", 1.5, True, None, -5])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"invalid setting tail_sampling\.decision_wait="):
        load_tail_sampling({"decision_wait": bad, "policies": [{"name": "a", "type": "always_sample"}]})


def test_ottl_condition_loads_votes_not_sampled_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    raw = {"policies": [{"name": "o", "type": "ottl_condition", "ottl_condition": {"span": ["true"]}}]}
    with caplog.at_level("WARNING"):
        config = load_tail_sampling(raw)
    assert config.warnings and "ottl_condition is not evaluated" in config.warnings[0]
    assert "ottl_condition is not evaluated" in caplog.text


def test_unknown_types_name_every_supported_one() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_tail_sampling({"policies": [{"name": "o", "type": "skip"}]})
    message = str(excinfo.value)
    assert excinfo.value.setting == "policies.o.type"
    for kind in (*UPSTREAM_TYPES, *EXTENSION_TYPES):
        assert kind in message


@pytest.mark.parametrize(
    ("raw", "setting"),
    [
        ({"policies": []}, "tail_sampling.policies"),
        ({}, "tail_sampling.policies"),
        ({"policies": [{"type": "always_sample"}]}, "tail_sampling.policies[0].name"),
        ({"policies": [{"name": "a", "type": "nope"}]}, "policies.a.type"),
        ({"policies": [{"name": "a", "type": "latency", "latency": {"threshold": 5}}]}, "policies.a.latency.threshold"),
        (
            {"policies": [{"name": "a", "type": "latency", "latency": {"threshold_ms": "5"}}]},
            "policies.a.latency.threshold_ms",
        ),
        ({"policies": [{"name": "a", "type": "always_sample", "colour": 1}]}, "policies.a.colour"),
        (
            {"policies": [{"name": "a", "type": "always_sample"}, {"name": "a", "type": "always_sample"}]},
            "tail_sampling.policies.name",
        ),
        ({"num_traces": -1, "policies": [{"name": "a", "type": "always_sample"}]}, "tail_sampling.num_traces"),
        ({"num_tracez": 1, "policies": [{"name": "a", "type": "always_sample"}]}, "tail_sampling.num_tracez"),
        (
            {"block_on_overflow": "yes", "policies": [{"name": "a", "type": "always_sample"}]},
            "tail_sampling.block_on_overflow",
        ),
        (
            {"sampling_strategy": "eager", "policies": [{"name": "a", "type": "always_sample"}]},
            "tail_sampling.sampling_strategy",
        ),
        (
            {"budget": {"traces_per_second": -1}, "policies": [{"name": "a", "type": "always_sample"}]},
            "tail_sampling.budget.traces_per_second",
        ),
        (
            {"decision_cache": {"size": 1}, "policies": [{"name": "a", "type": "always_sample"}]},
            "tail_sampling.decision_cache",
        ),
        (
            {"stress_relief": {"mode": "sometimes"}, "policies": [{"name": "a", "type": "always_sample"}]},
            "tail_sampling.stress_relief.mode",
        ),
    ],
)
def test_config_errors_name_the_setting(raw: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_tail_sampling(raw)
    assert excinfo.value.setting == setting


def test_extension_policies_and_durations() -> None:
    raw = {
        "policies": [
            {"name": "eb", "type": "error_boost", "error_boost": {"half_life": "30s", "window": "2s", "max_boost": 5}},
            {"name": "r", "type": "rare", "rare": {"traces_per_window": 2, "window": "5m"}},
            {"name": "dyn", "type": "dynamic", "dynamic": {"goal_throughput_per_sec": 5, "adjustment_interval": "10s"}},
        ],
        "stress_relief": {"mode": "never", "minimum_activation_duration": "30s"},
        "max_spans_per_trace": 10,
    }
    config = load_tail_sampling(raw)
    eb = config.policies[0]
    assert eb == ErrorBoost(name="eb", half_life_s=30.0, window_s=2.0, max_boost=5.0)
    assert config.policies[1].window_s == 300.0  # type: ignore[attr-defined]
    assert config.stress_relief.mode == "never"
    assert config.stress_relief.minimum_activation_duration_s == 30.0
    assert config.max_spans_per_trace == 10


def test_repository_otel_config_equals_the_python_default() -> None:
    from_file = load_tail_sampling_file(REPO / "otel-config.yaml")
    assert from_file == default_config()


def test_file_and_equivalent_dict_give_identical_policies(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO / "otel-config.yaml").read_text())
    from_dict = load_tail_sampling(document["processors"]["tail_sampling"])
    from_file = load_tail_sampling_file(REPO / "otel-config.yaml")
    assert from_dict.policies == from_file.policies
    assert from_dict == from_file
    # A named instance, tail_sampling/<name>, is found too.
    document["processors"] = {"tail_sampling/edge": document["processors"]["tail_sampling"]}
    named = tmp_path / "named.yaml"
    named.write_text(yaml.safe_dump(document))
    assert load_tail_sampling_file(named) == from_file


def test_repository_otel_config_is_a_plausible_collector_file() -> None:
    document = yaml.safe_load((REPO / "otel-config.yaml").read_text())
    pipelines = document["service"]["pipelines"]
    for pipeline in pipelines.values():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                assert component in document[section], component
    assert "tail_sampling" in pipelines["traces"]["processors"]
    assert set(document["exporters"]) >= {"otlp/traces", "prometheus"}
    # Only upstream policy types: a Collector refuses Sieve's extensions.
    for policy in document["processors"]["tail_sampling"]["policies"]:
        assert policy["type"] in UPSTREAM_TYPES


def test_missing_block_and_unreadable_file(tmp_path: Path) -> None:
    empty = tmp_path / "c.yaml"
    empty.write_text("processors: {batch: {}}\n")
    with pytest.raises(ConfigError, match=r"processors\.tail_sampling"):
        load_tail_sampling_file(empty)
    with pytest.raises(ConfigError):
        load_tail_sampling_file(tmp_path / "missing.yaml")


def test_default_config_with_extensions() -> None:
    plain = default_config()
    extended = default_config(with_extensions=True)
    # Without the extensions, the extended list is the Collector tier's, in its order.
    assert tuple(p for p in extended.policies if p in plain.policies) == plain.policies
    extensions = [p for p in extended.policies if p not in plain.policies]
    assert {type(p).TYPE for p in extensions} == {"n_plus_one", "error_boost", "rare", "and"}
    # The deterministic extension sits with the filters, before the random baseline (the reason it stamps is its
    # own); the random ones come after it.
    at = [p.name for p in extended.policies].index
    assert at("slow-lookups") < at("n-plus-one") < at("baseline") < at("error-boost")
    assert isinstance(plain, TailSamplingConfig)
    assert any(isinstance(p, Probabilistic) for p in plain.policies)
