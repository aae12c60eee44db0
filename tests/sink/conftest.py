"""Fixtures for the Postgres sink: fast settings (``restartable_pg`` lives in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.export.postgres import SinkSettings


def fast_settings(spool_dir: Path, **overrides: Any) -> SinkSettings:
    """Settings that make outages and recoveries happen within a test's patience."""
    values: dict[str, Any] = {
        "spool_dir": spool_dir,
        "batch_size": 200,
        "flush_interval_s": 0.1,
        "queue_size": 20_000,
        "max_attempts": 2,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.2,
        "breaker_failure_threshold": 2,
        "breaker_reset_s": 0.3,
        "breaker_reset_max_s": 1.0,
        "connect_timeout_s": 2.0,
        "checkout_timeout_s": 0.5,
    }
    values.update(overrides)
    return SinkSettings(**values)
