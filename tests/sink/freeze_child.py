"""A process writing through the sink under load until it is killed (used by test_freeze.py).

Usage: freeze_child.py DSN SPOOL_DIR EMITTED_FILE STATUS_FILE. Records one event per iteration and appends
"<i> <accepted 1|0>" to EMITTED_FILE once ``record_event`` has returned; every 50 ms appends one JSON line with
``health()`` and ``stats()`` to STATUS_FILE, so the test can watch the sink's state from outside.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from pipeline.export.postgres import PostgresSink, SinkSettings

SETTINGS = {
    "batch_size": 200,
    "flush_interval_s": 0.1,
    "max_attempts": 2,
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.2,
    "breaker_failure_threshold": 2,
    "breaker_reset_s": 0.3,
    "breaker_reset_max_s": 1.0,
    "checkout_timeout_s": 0.5,
    "statement_timeout_s": 0.8,
    "write_timeout_s": 1.0,
    "probe_timeout_s": 0.5,
}


def report(sink: PostgresSink, status_file: Path, stop: threading.Event) -> None:
    with status_file.open("a", buffering=1) as out:
        while not stop.wait(0.05):
            out.write(json.dumps({"health": sink.health(), "stats": sink.stats()}) + "\n")


def main() -> None:
    dsn, spool_dir, emitted_file, status_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    sink = PostgresSink(dsn, SinkSettings(spool_dir=spool_dir, **SETTINGS))  # type: ignore[arg-type]
    stop = threading.Event()
    threading.Thread(target=report, args=(sink, status_file, stop), daemon=True).start()
    with emitted_file.open("a", buffering=1) as log:
        i = 0
        while True:
            accepted = sink.record_event("freeze", {"i": i})
            log.write(f"{i} {int(accepted)}\n")
            i += 1
            time.sleep(0.002)


if __name__ == "__main__":
    main()
