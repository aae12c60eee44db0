"""The cost benchmark's load generator, in a process of its own so its CPU is not the server's.

    python -m bench.cost_load --url ws://127.0.0.1:PORT --settings '{...}' --server-pid PID \
        [--pg-pid PID] [--metrics-url URL] [--warmup-s 5] [--duration-s 15]

First it measures the server's CPU with no load for ``--idle-s`` (its timers and background threads: a cost per
second, not per turn, that a slower variant spreads over fewer turns). Then it runs the demo's ``LoadGenerator``
(no error burst) without a break for warm-up + measured window + a short tail, so connections stay open across
the window's edges and the server is in a steady state throughout. At the window's start and end it reads the
server's CPU time (``/proc/<pid>/stat``, all threads, and its main thread's: the event loop), Postgres' (the
postmaster's process tree), its own, and the load generator's live counts; the differences are the window.
Prints one JSON object: the window (see ``bench.cost_report``) and the run's turns.

With ``--metrics-url`` it scrapes the Prometheus endpoint every ``--scrape-interval-s`` (5 s, as the compose
stack's Prometheus scrapes the service), from warm-up on: collection is part of what telemetry costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench.cost_proc import cpu_ticks, thread_cpu_ticks, ticks_to_s, tree_cpu_ticks
from pipeline.config import load_settings
from pipeline.demo.loadgen import LoadGenerator
from pipeline.demo.provider import Provider

TAIL_S = 1.0  # load continues this long after the window, so its last turns are not the run's wind-down


@dataclass(frozen=True)
class Snapshot:
    t: float
    server_ticks: int
    loop_ticks: int
    pg_ticks: int | None
    load_cpu_s: float
    turns: int
    latencies: int
    errors: int


def snapshot(load: LoadGenerator, server_pid: int, pg_pid: int | None) -> Snapshot:
    r = load.result
    return Snapshot(
        t=time.monotonic(),
        server_ticks=cpu_ticks(server_pid),
        loop_ticks=thread_cpu_ticks(server_pid, server_pid),
        pg_ticks=tree_cpu_ticks(pg_pid) if pg_pid else None,
        load_cpu_s=time.process_time(),
        turns=r.turns,
        latencies=len(r.latencies_s),
        errors=r.error_count,
    )


async def _scrape(url: str, interval_s: float, counter: list[int]) -> None:
    def get() -> None:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()

    while True:
        await asyncio.to_thread(get)
        counter[0] += 1
        await asyncio.sleep(interval_s)


async def measure(
    url: str,
    overrides: dict[str, Any],
    *,
    server_pid: int,
    pg_pid: int | None,
    warmup_s: float,
    duration_s: float,
    idle_s: float = 3.0,
    metrics_url: str | None = None,
    scrape_interval_s: float = 5.0,
) -> dict[str, Any]:
    settings = load_settings(environ={}, **overrides)
    # Before any load: what the server spends per second on its own (timers, background threads).
    idle_t0, idle_ticks0 = time.monotonic(), cpu_ticks(server_pid)
    await asyncio.sleep(idle_s)
    idle_ticks, idle_elapsed_s = cpu_ticks(server_pid) - idle_ticks0, time.monotonic() - idle_t0
    load = LoadGenerator(url, settings, Provider(settings.provider))  # the server's provider is its own
    running = asyncio.create_task(load.run(warmup_s + duration_s + TAIL_S, burst=False))
    scrapes = [0]
    scraper = asyncio.create_task(_scrape(metrics_url, scrape_interval_s, scrapes)) if metrics_url else None
    await asyncio.sleep(warmup_s)
    start = snapshot(load, server_pid, pg_pid)
    scrapes_before = scrapes[0]
    await asyncio.sleep(duration_s)
    end = snapshot(load, server_pid, pg_pid)
    scrapes_in_window = scrapes[0] - scrapes_before
    result = await running
    if scraper is not None:
        scraper.cancel()
    latencies = result.latencies_s[start.latencies : end.latencies]
    pg_cpu_s = (
        ticks_to_s(end.pg_ticks - start.pg_ticks) if end.pg_ticks is not None and start.pg_ticks is not None else None
    )
    return {
        "turns": end.turns - start.turns,
        "window_s": end.t - start.t,
        "server_cpu_s": ticks_to_s(end.server_ticks - start.server_ticks),
        "loop_cpu_s": ticks_to_s(end.loop_ticks - start.loop_ticks),
        "pg_cpu_s": pg_cpu_s,
        "load_cpu_s": end.load_cpu_s - start.load_cpu_s,
        "errors": end.errors - start.errors,
        "latencies_ms": [round(s * 1000, 3) for s in latencies],
        "scrapes": scrapes_in_window,
        "idle_s": idle_elapsed_s,
        "idle_cpu_s": ticks_to_s(idle_ticks),
        "run_turns": result.turns,
        "run_errors": dict(result.errors),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost_load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--settings", required=True, help="load_settings overrides as JSON (the demo section)")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--pg-pid", type=int, help="the postmaster: Postgres' CPU is reported for information")
    parser.add_argument("--metrics-url")
    parser.add_argument("--scrape-interval-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--duration-s", type=float, default=15.0)
    parser.add_argument("--idle-s", type=float, default=3.0, help="server CPU with no load is measured first")
    args = parser.parse_args(argv)
    window = asyncio.run(
        measure(
            args.url,
            json.loads(args.settings),
            server_pid=args.server_pid,
            pg_pid=args.pg_pid,
            warmup_s=args.warmup_s,
            duration_s=args.duration_s,
            idle_s=args.idle_s,
            metrics_url=args.metrics_url,
            scrape_interval_s=args.scrape_interval_s,
        )
    )
    print(json.dumps(window), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
