"""A small program writing through the sink until it is killed (used by test_crash.py).

Usage: crash_child.py DSN SPOOL_DIR LOG_FILE. Records one event per iteration and, after record_event returns,
appends "<i> <unix time>" to LOG_FILE, so the test knows what was emitted and when.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pipeline.export.postgres import PostgresSink, SinkSettings


def main() -> None:
    dsn, spool_dir, log_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    settings = SinkSettings(
        spool_dir=spool_dir,
        batch_size=100,
        flush_interval_s=0.1,
        max_attempts=1,
        breaker_failure_threshold=1,
        breaker_reset_s=0.5,
        checkout_timeout_s=0.3,
    )
    sink = PostgresSink(dsn, settings)
    with log_file.open("a", buffering=1) as log:
        i = 0
        while True:
            sink.record_event("crash", {"i": i})
            log.write(f"{i} {time.time():.6f}\n")
            i += 1
            time.sleep(0.002)


if __name__ == "__main__":
    main()
