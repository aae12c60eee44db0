"""External tools the alert and stack tests run (``promtool``, ``amtool``, ``prometheus``, ``docker-compose``).

Missing tools skip a test on a developer machine, with the reason (and the Debian package to install). In CI
(the ``CI`` environment variable set, as ``.ci/run`` runs under every CI service) a missing tool fails instead:
``.ci/run`` installs Debian's ``prometheus``, ``prometheus-alertmanager`` and ``docker-compose`` packages, so
their absence there is a
broken pipeline, not an optional extra.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALERTS_DIR = REPO / "dashboards" / "alerts"
RULES_FILE = ALERTS_DIR / "sieve.rules.yml"
RUNBOOKS_FILE = ALERTS_DIR / "runbooks.md"
RULE_TESTS_DIR = ALERTS_DIR / "tests"
DEBIAN_PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "docker-compose": "docker-compose",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


def require_tool(name: str, *, required_in_ci: bool = True) -> str:
    """The path of ``name``; skips (or, in CI and when ``required_in_ci``, fails) when it is not installed."""
    path = shutil.which(name)
    if path:
        return path
    package = DEBIAN_PACKAGES.get(name, name)
    reason = f"{name} is not installed (Debian package {package})"
    if required_in_ci and os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it (.ci/run installs the {package} package)")
    pytest.skip(reason)


def run_tool(args: list[str], *, stdin: str | None = None, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a tool from the repository root, capturing text output."""
    return subprocess.run(args, cwd=REPO, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False)
