"""``python -m dashboards``: regenerate ``dashboards/grafana/*.json``; ``--check`` only reports stale files."""

from __future__ import annotations

import argparse
import sys

from dashboards.build import GENERATE_COMMAND, OUTPUT_DIR, stale_files, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is not up to date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print(f"stale dashboard JSON in {OUTPUT_DIR}: {', '.join(stale)}; run `{GENERATE_COMMAND}`")
            return 1
        print("dashboard JSON is up to date")
        return 0
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
