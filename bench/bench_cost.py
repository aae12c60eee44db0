"""What a turn of the demo service costs in server CPU: no telemetry, plain OpenTelemetry, and Sieve, in one run.

    python -m bench cost [--quick]                                    # as part of `make bench`, or alone
    python -m bench.bench_cost [--rounds 3] [--warmup-s 5] [--duration-s 15] [--quick]

The same demo service (``pipeline/demo/service.py``, its ConversationRepository and Provider) runs in three variants,
described in ``bench/cost_server.py``: (a) ``none``, the API's no-op providers; (b) ``otel``, plain OpenTelemetry
exporting every span through the OTLP encoder; (c) ``sieve``, Sieve as ``sieve demo`` builds it, exporting kept spans
through the same encoder. Rounds alternate a b c a b c (3 rounds by default); every round of every variant starts a
fresh server process, and the load generator (``bench/cost_load.py``) runs in a process of its own.

The workload is CPU-bound, as in the old ``bench_demo``: provider latency 0, no failures, no think time, no heavy
conversations or slow lookups, no simulated connection delay, pools that never expire idle connections;
4 clients. The history index is present (``demo.with_index``) and the turns' messages are deleted before every
server starts, so every round sees the same database: without that the hot conversations' history reads
would sort ever more rows and later rounds would cost more than earlier ones. One embedded Postgres (pgserver)
in a temporary directory serves all rounds; it is migrated and seeded once.

The figure of record is **server CPU per turn**: user + system time of the server process (all threads, from
``/proc/<pid>/stat``) over the measured window, divided by the turns completed in the window, in microseconds.
Beside it: turns/s, p50 and p99 turn latency seen by the clients, and, for information, the part of CPU per turn
spent on the event loop (the server's main thread), Postgres' CPU per turn (the postmaster and its backends:
Sieve's sink writes into the same server), and the server's CPU per second with no load (timers and background
threads: a cost per second that CPU per turn spreads over fewer turns when a variant is slower). Per round the
ratios c/b and c/a of CPU per turn and p99 c/a; the median of each over rounds is the result (``cost_report``).

Read CPU per turn with the machine's load in mind: it is steadier than throughput, not immune. When other work
competes for the 2 cores every variant's CPU per turn rises, and (c)'s more: its ``slow-lookups`` policy judges
wall time, so contention makes it keep (and export, and write to the sink) more traces. ``details`` lists, per
round, the spans exported per turn and what the sampler kept by policy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import psycopg

from bench.cost_proc import read_stat
from bench.cost_report import LETTER, VARIANTS, render, summarise, variant_row
from pipeline.config import load_settings
from pipeline.db import start_embedded
from pipeline.demo.seed import seed, set_history_index
from pipeline.migrate import migrate

REPO = Path(__file__).resolve().parent.parent
CLIENTS = 4
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


def overrides(dsn: str, tmp: Path, think_time_s: float = 0.0) -> dict[str, Any]:
    """The ``load_settings`` overrides every process of the run uses (the environment is not read)."""
    return {
        "database": {"dsn": dsn},
        "prometheus": {"port": 0, "host": "127.0.0.1"},
        "service": {"host": "127.0.0.1", "port": 0, "pool_idle_lifetime_s": 0, "db_connect_delay_s": 0},
        "provider": {"latency_median_s": 0.0, "failure_rate": 0.0, "chunks": 4},
        "demo": {
            "clients": CLIENTS,
            "think_time_s": think_time_s,
            "heavy_conversations": 0,
            "slow_lookup_share": 0.0,
            "error_burst_share": 0.0,
            "with_index": True,
        },
        "sink": {"spool_dir": str(tmp / "spool")},
    }


def reset_database(dsn: str) -> None:
    """Back to the seeded state: the turns' messages go, the seed's stay; fresh statistics."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM public.messages WHERE idempotency_key NOT LIKE 'seed:%'")
        conn.execute("DELETE FROM public.conversations WHERE title <> 'seeded'")
        conn.execute("VACUUM ANALYZE public.messages")
        conn.execute("VACUUM ANALYZE public.conversations")


def postmaster_pid(dsn: str) -> int | None:
    """The Postgres server's main process (the parent of our backend), when it runs on this machine."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        try:  # while the connection is open: its backend ends with it
            return read_stat(int(row[0])).ppid if row else None
        except OSError:  # a server elsewhere: its CPU is not ours to read
            print("bench cost: Postgres runs elsewhere, its CPU is not reported", file=sys.stderr)
            return None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _read_json_line(stream: IO[str], what: str, log: Path) -> dict[str, Any]:
    line = stream.readline()
    if not line.strip():
        raise RuntimeError(f"bench cost: {what} printed nothing; its log ends with:\n{_tail(log)}")
    data: dict[str, Any] = json.loads(line)
    return data


def one_round(
    variant: str,
    settings_json: str,
    pg_pid: int | None,
    tmp: Path,
    label: str,
    warmup_s: float,
    duration_s: float,
    idle_s: float,
) -> dict[str, Any]:
    """Start a server of ``variant``, put the load on it from another process, stop it; the window and stats."""
    server_log = tmp / f"server-{label}.log"
    with server_log.open("w") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.cost_server", "--variant", variant, "--settings", settings_json],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert server.stdin is not None and server.stdout is not None
    try:
        ready = _read_json_line(server.stdout, f"server {label}", server_log)
        load_cmd = [
            *(sys.executable, "-m", "bench.cost_load", "--url", ready["url"], "--settings", settings_json),
            *("--server-pid", str(server.pid), "--warmup-s", str(warmup_s), "--duration-s", str(duration_s)),
            *("--idle-s", str(idle_s)),
        ]
        if pg_pid:
            load_cmd += ["--pg-pid", str(pg_pid)]
        if ready.get("metrics_url"):
            load_cmd += ["--metrics-url", ready["metrics_url"]]
        load = subprocess.run(
            load_cmd,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=idle_s + warmup_s + duration_s + START_TIMEOUT_S,
            check=False,  # a failure is reported below with the load generator's stderr
        )
        if load.returncode != 0:
            raise RuntimeError(f"bench cost: load generator for {label} failed:\n{load.stderr[-3000:]}")
        window: dict[str, Any] = json.loads(load.stdout.strip().splitlines()[-1])
        server.stdin.close()
        stats = _read_json_line(server.stdout, f"server {label} (at shutdown)", server_log)
        server.wait(STOP_TIMEOUT_S)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return {"window": window, "server": stats}


def run(
    quick: bool = False,
    *,
    rounds: int | None = None,
    warmup_s: float | None = None,
    duration_s: float | None = None,
    think_time_s: float = 0.0,
) -> dict[str, Any]:
    """``think_time_s`` > 0 paces the clients (a mean pause between turns) so that every variant runs below
    saturation at a similar rate: a check on how much of a ratio comes from the variants' different throughput."""
    rounds = rounds or (1 if quick else 3)
    warmup_s = warmup_s if warmup_s is not None else (3.0 if quick else 5.0)
    duration_s = duration_s if duration_s is not None else (4.0 if quick else 15.0)
    idle_s = 1.0 if quick else 3.0
    by_round: list[dict[str, dict[str, Any]]] = []
    details: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sieve-bench-cost-") as tmp_name:
        tmp = Path(tmp_name)
        db = start_embedded(tmp / "pg")
        try:
            base = overrides(db.dsn, tmp, think_time_s)
            settings = load_settings(environ={}, **base)
            migrate(db.dsn)
            seed(db.dsn, settings.demo)
            set_history_index(db.dsn, settings.demo.with_index)
            pg_pid = postmaster_pid(db.dsn)
            settings_json = json.dumps(base)
            for r in range(1, rounds + 1):
                rows: dict[str, dict[str, Any]] = {}
                for variant in VARIANTS:
                    label = f"{r}{LETTER[variant]}"
                    print(f"bench cost: round {r}/{rounds}, {variant} ...", file=sys.stderr, flush=True)
                    reset_database(db.dsn)
                    out = one_round(variant, settings_json, pg_pid, tmp, label, warmup_s, duration_s, idle_s)
                    rows[variant] = variant_row(out["window"])
                    details.append(_detail(label, variant, out))
                    print(f"bench cost:   {_brief(rows[variant])}", file=sys.stderr, flush=True)
                by_round.append(rows)
        finally:
            db.close()
    summary = summarise(by_round)
    table = render(summary)
    print("\n".join(table), file=sys.stderr, flush=True)
    return {
        "workload": (
            f"{CLIENTS} clients, provider latency 0, "
            + (f"think time {think_time_s:g} s (paced); " if think_time_s else "no think time; ")
            + f"{rounds} rounds a b c, "
            f"{warmup_s:g} s warm-up + {duration_s:g} s measured each, server and load in separate processes"
        ),
        "figure": "server CPU (utime+stime, all threads, /proc) per turn completed in the measured window, us",
        "median": summary["median"],
        "rounds": summary["rounds"],
        "details": details,
        "table": table,
    }


def _detail(label: str, variant: str, out: dict[str, Any]) -> dict[str, Any]:
    window, server = out["window"], out["server"]
    run_turns = max(1, int(window["run_turns"]))
    detail = {
        "round": label,
        "variant": variant,
        "scrapes_in_window": window["scrapes"],
        "run_turns": window["run_turns"],
        "run_errors": window["run_errors"],
        "spans_exported": server.get("spans_exported"),
        "spans_exported_per_turn": round(server.get("spans_exported", 0) / run_turns, 2),
        "bytes_exported_per_turn": round(server.get("bytes_exported", 0) / run_turns),
    }
    for key in ("sampler", "sink"):
        if key in server:
            detail[key] = server[key]
    return detail


def _brief(row: dict[str, Any]) -> str:
    return (
        f"{row['cpu_us_per_turn']:.0f} us/turn, {row['turns_per_s']:.0f} turns/s, "
        f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, {row['turns']} turns, {row['errors']} errors"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cost")
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke test of the harness")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--warmup-s", type=float)
    parser.add_argument("--duration-s", type=float)
    parser.add_argument("--think-time-s", type=float, default=0.0, help="pace the clients (default 0: CPU-bound)")
    args = parser.parse_args(argv)
    result = run(
        args.quick,
        rounds=args.rounds,
        warmup_s=args.warmup_s,
        duration_s=args.duration_s,
        think_time_s=args.think_time_s,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
