"""Run every benchmark and write the results to ``bench/results/latest.json`` (and a dated copy).

Targets are ratios against a baseline measured in the same run: machines here are shared and noisy, so absolute
numbers from different runs are not comparable.

    python -m bench                 # all benchmarks
    python -m bench --quick         # shorter runs (a smoke test of the harness)
    python -m bench cost sampling   # only these

Running only some benchmarks keeps the others' entries in ``latest.json`` from the run that made them (each
says which in ``from_run``); the dated copy holds this run alone.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

BENCHES = ("cost", "sampling", "sink", "logs", "storage", "report")
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHES)})")
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHES)
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": args.quick,
        "benchmarks": {},
    }
    for name in names:
        try:
            module = importlib.import_module(f"bench.bench_{name}")
        except ModuleNotFoundError:
            if name in args.names:
                print(f"bench: no benchmark named {name!r}", file=sys.stderr)
                return 2
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        results["benchmarks"][name] = module.run(quick=args.quick)
        results["benchmarks"][name]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(results["benchmarks"][name], indent=2), file=sys.stderr, flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json").write_text(json.dumps(results, indent=2) + "\n")
    latest = _with_earlier(results, RESULTS / "latest.json") if args.names else results
    (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
    print(f"bench: results written to {RESULTS / 'latest.json'}", file=sys.stderr)
    return 0


def _with_earlier(results: dict[str, Any], latest: Path) -> dict[str, Any]:
    """``results`` plus the entries of benchmarks this run did not repeat, from the previous ``latest.json``."""
    try:
        earlier = json.loads(latest.read_text())
    except (OSError, ValueError):
        return results
    merged = {**results, "benchmarks": dict(results["benchmarks"])}
    for name, entry in earlier.get("benchmarks", {}).items():
        if name in BENCHES and name not in merged["benchmarks"] and isinstance(entry, dict):
            merged["benchmarks"][name] = {**entry, "from_run": entry.get("from_run", earlier.get("started"))}
    return merged


if __name__ == "__main__":
    raise SystemExit(main())
