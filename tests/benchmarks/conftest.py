"""The benchmarks live in the repository's ``bench`` package, which is not installed: make it importable even
when pytest is started without the repository root on ``sys.path``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
