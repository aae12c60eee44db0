"""The fixed identities of Sieve's Grafana objects, and the committed dashboard JSON they refer to.

UIDs are fixed so that dashboards reference data sources by ``{type, uid}``, links between dashboards survive a
re-import, and pushing twice updates instead of duplicating. The generator (``python -m dashboards``), the file
provisioning under ``dashboards/provisioning`` and ``sieve dashboards push`` all take them from here.

The dashboard JSON is generated at development time and committed under ``dashboards/grafana``; a wheel carries a
copy inside this package (``_dashboards``, see ``[tool.hatch.build.targets.wheel.force-include]``), so the push
needs neither the generator nor a checkout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

FOLDER_UID = "sieve"
FOLDER_TITLE = "Sieve"

PROMETHEUS_UID = "sieve-prometheus"
PROMETHEUS_TYPE = "prometheus"
POSTGRES_UID = "sieve-postgres"
POSTGRES_TYPE = "grafana-postgresql-datasource"  # "postgres" before Grafana 10.2; new Grafanas alias the old id
JAEGER_UID = "sieve-jaeger"
JAEGER_TYPE = "jaeger"

OVERVIEW_UID = "sieve-overview"
WEBSOCKET_UID = "sieve-websocket"
STORAGE_UID = "sieve-storage"
PIPELINE_UID = "sieve-pipeline"
DASHBOARD_UIDS: tuple[str, ...] = (OVERVIEW_UID, WEBSOCKET_UID, STORAGE_UID, PIPELINE_UID)

# The scrape job the dashboards select by default: dashboards/prometheus/prometheus.yml's job for Sieve's /metrics.
DEFAULT_JOB = "sieve"

# Where the slow-lookups table links a trace id; a dashboard variable so a user can point it at their trace UI.
DEFAULT_TRACE_URL = "http://127.0.0.1:16686"


class DashboardFilesError(Exception):
    """The committed dashboard JSON is missing or unreadable."""


@dataclass(frozen=True)
class DashboardFile:
    """One committed dashboard: its file and parsed JSON model (``uid``, ``title``, ``panels``, ...)."""

    path: Path
    model: dict[str, Any]

    @property
    def uid(self) -> str:
        return str(self.model["uid"])

    @property
    def title(self) -> str:
        return str(self.model.get("title", self.uid))


def _repository_root() -> Path:
    return Path(__file__).resolve().parents[2]


def dashboards_dir() -> Path:
    """The directory of committed dashboard JSON: the wheel's copy, else ``dashboards/grafana`` of a checkout."""
    packaged = resources.files(__package__ or "pipeline.grafana") / "_dashboards"
    if packaged.is_dir():
        return Path(str(packaged))
    source = _repository_root() / "dashboards" / "grafana"
    if source.is_dir():
        return source
    raise DashboardFilesError(f"no dashboard JSON found (looked in {packaged} and {source})")


def load_dashboards(directory: Path | None = None) -> list[DashboardFile]:
    """Every ``*.json`` dashboard in ``directory`` (default ``dashboards_dir()``), sorted by file name."""
    directory = directory or dashboards_dir()
    found: list[DashboardFile] = []
    for path in sorted(directory.glob("*.json")):
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DashboardFilesError(f"{path}: not readable as JSON: {exc}") from exc
        if not isinstance(model, dict) or not model.get("uid"):
            raise DashboardFilesError(f"{path}: not a dashboard (no uid)")
        found.append(DashboardFile(path, model))
    if not found:
        raise DashboardFilesError(f"{directory}: no *.json dashboards")
    return found
