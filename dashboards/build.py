"""Generate the committed dashboard JSON (``dashboards/grafana/<uid>.json``) and check it is up to date."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.models import dashboard as dashboard_models

from dashboards import overview, pipeline_health, storage, websocket
from dashboards.common import to_json

GENERATE_COMMAND = "python -m dashboards"
OUTPUT_DIR = Path(__file__).resolve().parent / "grafana"

# One builder per dashboard; the file is named after the dashboard's uid.
BUILDERS: tuple[Callable[[], dashboard_models.Dashboard], ...] = (
    overview.build,
    websocket.build,
    storage.build,
    pipeline_health.build,
)


def generate() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    files: dict[str, str] = {}
    for build in BUILDERS:
        model = build()
        files[f"{model.uid}.json"] = to_json(model)
    return files


def write(directory: Path = OUTPUT_DIR) -> list[Path]:
    """Write every dashboard into ``directory`` and remove JSON files no builder produces any more."""
    directory.mkdir(parents=True, exist_ok=True)
    files = generate()
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(directory: Path = OUTPUT_DIR) -> list[str]:
    """Names of committed files that differ from what the builders generate (missing and extra included)."""
    files = generate()
    committed = {p.name for p in directory.glob("*.json")}
    problems = sorted(committed - files.keys())
    for name, text in files.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            problems.append(name)
    return problems
