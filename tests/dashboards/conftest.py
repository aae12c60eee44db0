"""The committed dashboards, loaded once per test session, and their panels' targets."""

from __future__ import annotations

from typing import Any

import pytest

from dashboards import build  # noqa: F401  (imports the SDK under the filter of dashboards/__init__.py)
from pipeline.grafana import resources

Target = tuple[str, dict[str, Any], dict[str, Any]]  # (uid/panel/refId, panel, target)


@pytest.fixture(scope="session")
def committed() -> list[resources.DashboardFile]:
    return resources.load_dashboards()


@pytest.fixture(scope="session")
def targets(committed: list[resources.DashboardFile]) -> list[Target]:
    """Every target of every panel of every committed dashboard."""
    found: list[Target] = []
    for board in committed:
        for panel in board.model.get("panels", []):
            found.extend(
                (f"{board.uid}/{panel.get('title')}/{target.get('refId')}", panel, target)
                for target in panel.get("targets", [])
            )
    return found


@pytest.fixture(scope="session")
def committed_exprs(targets: list[Target]) -> list[tuple[str, str]]:
    """(where, PromQL) of every Prometheus target."""
    return [(where, t["expr"]) for where, panel, t in targets if panel["datasource"]["uid"] == resources.PROMETHEUS_UID]
