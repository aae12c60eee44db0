from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.export.postgres import SinkSettings


def test_defaults_are_valid_and_frozen() -> None:
    settings = SinkSettings()
    assert settings.batch_size == 1000 and settings.spool_dir == Path(".sieve/spool")
    with pytest.raises(AttributeError):
        settings.batch_size = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("batch_size", 0, "sink.batch_size"),
        ("batch_size", 20_000, "from 1 to 10000"),
        ("queue_size", True, "sink.queue_size"),
        ("flush_interval_s", 0, "greater than 0"),
        ("connect_timeout_s", float("nan"), "finite"),
        ("retention_days", 0, "sink.retention_days"),
        ("backoff_max_s", 0.01, "backoff_base_s"),
        ("breaker_reset_max_s", 0.25, "breaker_reset_s"),
        ("stall_flush_intervals", 0, "sink.stall_flush_intervals"),
        ("write_timeout_s", -1, "greater than 0"),
        ("partitions_ahead_days", 40, "from 0 to 31"),
    ],
)
def test_a_bad_value_names_the_setting(field: str, value: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        SinkSettings(**{field: value})  # type: ignore[arg-type]


def test_a_string_spool_dir_becomes_a_path() -> None:
    assert SinkSettings(spool_dir="x/y").spool_dir == Path("x/y")  # type: ignore[arg-type]
