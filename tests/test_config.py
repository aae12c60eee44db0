from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.errors import ConfigError


def test_defaults_follow_the_old_daemon_and_stay_on_loopback() -> None:
    s = load_settings(environ={})
    assert s.service.port == 8079 and s.service.hello_timeout_s == 15.0
    assert (s.prometheus.host, s.prometheus.port) == ("127.0.0.1", 9464)
    assert s.database.dsn is None and s.otlp.endpoint is None


def test_precedence_overrides_then_env_then_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "sieve.yaml"
    cfg.write_text("service_name: from-yaml\ndemo:\n  clients: 3\n  duration_s: 9\nprometheus:\n  port: 9000\n")
    env = {"SIEVE_DEMO__CLIENTS": "4", "OTEL_SERVICE_NAME": "from-env", "SIEVE_CONFIG": str(cfg)}
    s = load_settings(environ=env, demo={"duration_s": 2})
    assert s.service_name == "from-env"
    assert s.demo.clients == 4
    assert s.demo.duration_s == 2
    assert s.prometheus.port == 9000


def test_standard_otel_and_dsn_variables_are_honoured() -> None:
    s = load_settings(
        environ={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_PROMETHEUS_PORT": "9999",
            "SIEVE_PG_DSN": "postgresql://u@db/app",
        }
    )
    assert s.otlp.endpoint == "http://collector:4318"
    assert s.prometheus.port == 9999
    assert s.database.dsn == "postgresql://u@db/app"


@pytest.mark.parametrize(
    ("env", "setting", "accepted"),
    [
        ({"SIEVE_PROMETHEUS__PORT": "70000"}, "prometheus.port", "less than or equal to 65535"),
        ({"SIEVE_DEMO__CLIENTS": "many"}, "demo.clients", "valid integer"),
        ({"SIEVE_PROMETHEUS__HOST": "0.0.0.0"}, "prometheus.host", "loopback"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "otlp.protocol", "'http/protobuf'"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "otlp.endpoint", "http:// or https://"),
        ({"SIEVE_PROVIDER__FAILURE_RATE": "1.5"}, "provider.failure_rate", "less than or equal to 1"),
        ({"SIEVE_NO_SUCH__THING": "1"}, "SIEVE_NO_SUCH__THING", "a known section"),
        ({"SIEVE_DEMO__CLIENTZ": "4"}, "demo.clientz", "a known setting: one of clients"),
        ({"SIEVE_LOGS__BRIDGE__LEVELL": "INFO"}, "logs.bridge.levell", "one of"),
        ({"SIEVE_LOGS__SAMPLING__DEFAULT_RATE": "2"}, "logs.sampling.default_rate", "a rate in 0..1"),
        ({"SIEVE_SINK__BATCH_SIZE": "0"}, "sink.batch_size", "an integer >= 1"),
        ({"SIEVE_WEBSOCKET__ENVELOPE": "xml"}, "websocket.envelope", "'none', 'json' or 'json_strict'"),
        ({"SIEVE_STORAGE__SLOW_THRESHOLDS_MS": "{a: [1"}, "SIEVE_STORAGE__SLOW_THRESHOLDS_MS", "YAML/JSON"),
    ],
)
def test_a_bad_value_names_the_setting_the_value_and_what_is_accepted(
    env: dict[str, str], setting: str, accepted: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=env)
    message = str(err.value)
    assert setting in message
    assert next(iter(env.values())) in message
    assert accepted in message


def test_remote_metrics_need_an_explicit_setting() -> None:
    s = load_settings(environ={"SIEVE_PROMETHEUS__HOST": "0.0.0.0", "SIEVE_PROMETHEUS__ALLOW_REMOTE": "true"})
    assert s.prometheus.host == "0.0.0.0"


def test_a_broken_yaml_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("demo: [unclosed\n")
    with pytest.raises(ConfigError, match="SIEVE_CONFIG"):
        load_settings(bad, environ={})
    with pytest.raises(ConfigError, match="readable YAML"):
        load_settings(tmp_path / "missing.yaml", environ={})


def test_other_sieve_names_are_not_settings() -> None:
    """The project's own README and .env.example name SIEVE_TEST_PG_DSN and SIEVE_DEMO_TOKEN: never a refused start."""
    s = load_settings(environ={"SIEVE_TEST_PG_DSN": "postgresql://x/y", "SIEVE_DEMO_TOKEN": "t", "SIEVE_FOO": "1"})
    assert s == load_settings(environ={})
    assert load_settings(environ={"SIEVE_SERVICE_NAME": "svc"}).service_name == "svc"


def test_structured_values_from_the_environment_are_yaml() -> None:
    s = load_settings(
        environ={
            "SIEVE_STORAGE__SLOW_THRESHOLDS_MS": "{get_conversation_messages: 5}",
            "SIEVE_LOGS__SAMPLING__CATEGORIES": '{"SAFE_SEND": 0.5}',
            "SIEVE_WEBSOCKET__OPS": "[hello, call_tool]",
        }
    )
    assert s.storage.slow_thresholds_ms == {"get_conversation_messages": 5.0}
    assert s.logs.sampling.rate("SAFE_SEND") == 0.5
    assert s.websocket.ops == ("hello", "call_tool")


def test_owned_option_messages_read_as_one_sentence() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"SIEVE_LOGS__SAMPLING__DEFAULT_RATE": "abc"})
    assert str(err.value) == (
        "invalid setting logs.sampling.default_rate='abc': expected a valid number, unable to parse string as a number"
    )
    with pytest.raises(ConfigError, match=r"logs.bridge.level=.*expected a loguru level name"):
        load_settings(environ={"SIEVE_LOGS__BRIDGE__LEVEL": "LOUD"})
