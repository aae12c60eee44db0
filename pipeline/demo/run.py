"""``sieve demo``: Postgres, migrations, seed data, the instrumented service, the pipeline, load, a report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from opentelemetry.sdk.trace.export import SpanExporter

from pipeline.bootstrap import Telemetry
from pipeline.config import Settings, env_names
from pipeline.db import Database, open_database, to_url
from pipeline.demo.loadgen import LoadGenerator, LoadResult
from pipeline.demo.provider import Provider
from pipeline.demo.report import build_report, render
from pipeline.demo.seed import seed, set_history_index
from pipeline.demo.service import CLIENT_OPS, SERVER_OPS, DemoService
from pipeline.demo.stats import SpanStats
from pipeline.demo.store import ConversationRepository
from pipeline.errors import ListenError, SieveError
from pipeline.migrate import migrate
from pipeline.root import Sieve, noop, setup

log = logging.getLogger(__name__)
DEMO_LOG_MAX_BYTES = 20 * 1024 * 1024
DEMO_LOG_BACKUPS = 3


@dataclass
class DemoStack:
    """Everything ``sieve demo`` starts, so tests and benchmarks can start the same thing."""

    settings: Settings
    database: Database
    sieve: Sieve
    stats: SpanStats
    store: ConversationRepository
    provider: Provider
    service: DemoService

    @property
    def telemetry(self) -> Telemetry | None:
        return self.sieve.telemetry

    async def close(self) -> None:
        async def database() -> None:
            self.database.close()  # the embedded Postgres stops with its last holder

        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("service", self.service.stop),
            ("store", self.store.close),
            ("pipeline", self.sieve.aclose),  # decides held traces, so held log records follow them
            ("database", database),
        ]
        for name, step in steps:
            t0 = time.perf_counter()
            await step()
            log.debug("demo stop: %s in %.0f ms", name, (time.perf_counter() - t0) * 1000)


def _fresh_spans_file(path: Path | None) -> None:
    """One run's traces per file: the previous run's file and its rotated ones go."""
    if path is None:
        return
    for old in (path, *(path.with_name(f"{path.name}.{n}") for n in range(1, 101))):
        old.unlink(missing_ok=True)


def demo_settings(settings: Settings) -> Settings:
    """The demo declares its protocol to the WebSocket instrumentation: a JSON envelope with these ops."""
    websocket = settings.websocket.model_copy(
        update={
            "envelope": "json_strict",
            "ops": tuple(sorted(CLIENT_OPS)),
            "send_ops": tuple(sorted(SERVER_OPS)),
            "max_message_bytes": settings.service.max_message_bytes,
        }
    )
    update: dict[str, Any] = {"websocket": websocket}
    if settings.service_name == "unknown_service":
        update["service_name"] = "sieve-demo"
    return settings.model_copy(update=update)


async def start_stack(
    settings: Settings,
    *,
    instrumented: bool = True,
    install_globals: bool = False,
    span_exporters: Sequence[SpanExporter] = (),
) -> DemoStack:
    """Postgres, migrations, seed data, the pipeline (``pipeline.setup``) and the instrumented service.

    ``span_exporters`` get the kept spans besides the configured ones (the benchmarks' encoding exporter)."""
    database = open_database(settings.database)
    sieve: Sieve | None = None
    store: ConversationRepository | None = None
    try:
        migrate(database.dsn)
        seed(database.dsn, settings.demo)
        set_history_index(database.dsn, settings.demo.with_index)
        settings = demo_settings(settings)
        stats = SpanStats()
        if instrumented:
            _fresh_spans_file(settings.tracing.spans_file)
            sieve = setup(
                settings,
                database_dsn=database.dsn,
                install_globals=install_globals,
                span_observers=[stats.observe],
                span_exporters=span_exporters,
            )
        else:
            sieve = noop(settings)  # the benchmarks' baseline: the API's no-op providers, no SDK at all
        store = await ConversationRepository.open(to_url(database.dsn), sieve.storage, settings.service)
        provider = Provider(settings.provider, sieve.tracer_provider, random.Random(1))
        service = await DemoService(settings.service, store, provider, sieve.websocket, logs=sieve.logs).start()
    except BaseException:  # a failed or interrupted start leaves nothing running, the embedded Postgres included
        if store is not None:
            await store.close()
        if sieve is not None:
            await sieve.aclose()
        database.close()
        raise
    return DemoStack(settings, database, sieve, stats, store, provider, service)


def check_ports(settings: Settings) -> None:
    """Fail before Postgres starts and the seed runs when a port the demo needs is taken: one line, exit 2."""
    wanted = [(settings.service.host, settings.service.port, "service.port, env SIEVE_SERVICE__PORT or --port")]
    if settings.prometheus.enabled:
        wanted.append(
            (
                settings.prometheus.host,
                settings.prometheus.port,
                f"prometheus.port, env {' or '.join(env_names(('prometheus', 'port')))} or --metrics-port",
            )
        )
    for host, port, setting in wanted:
        if port == 0:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise ListenError(host, port, setting, exc) from None


async def run_demo(settings: Settings, *, serve: bool = False, out: TextIO = sys.stderr) -> dict[str, Any]:
    check_ports(settings)
    print(f"sieve demo: starting Postgres ({_where(settings)}), migrating, seeding...", file=out, flush=True)
    from loguru import logger

    logger.remove()  # loguru's default stderr sink would print over the progress line
    log_file = settings.demo.report_path.parent / "demo.log"
    # Size-bounded: a --serve run or many runs never fill the disk (the current file and three rotated ones).
    logger.add(log_file, level="DEBUG", rotation=DEMO_LOG_MAX_BYTES, retention=DEMO_LOG_BACKUPS, enqueue=False)
    _stop_on_sigterm()
    stack = await start_stack(settings, install_globals=True)
    telemetry = stack.telemetry
    assert telemetry is not None
    print(
        f"sieve demo: service {stack.service.url}, metrics {telemetry.metrics_url or '(off)'}, "
        f"{settings.demo.clients} clients for {settings.demo.duration_s:.0f} s",
        file=out,
        flush=True,
    )
    probe = _rates_probe(telemetry, stack.settings.service_name)
    load = LoadGenerator(stack.service.url, settings, stack.provider, probe=probe)
    progress = asyncio.create_task(_progress(load, stack, settings.demo.duration_s, out))
    try:
        result = await load.run(settings.demo.duration_s)
        progress.cancel()
        await stack.sieve.storage.drain_plans()  # plans of the last slow reads join their traces
        telemetry.force_flush()
        report = _report(result, stack)
        _write(report, settings.demo.report_path)
        print(render(report), file=sys.stdout, flush=True)
        print(f"report written to {settings.demo.report_path}", file=out)
        if serve:
            print("sieve demo: serving until interrupted (Ctrl-C); light load continues", file=out, flush=True)
            while True:
                await load.run(60.0, burst=False)
        return report
    finally:
        progress.cancel()
        await stack.close()


def _rates_probe(telemetry: Telemetry, service: str) -> Callable[[], dict[str, Any]] | None:
    """Once a second: the keep probability of an ordinary turn (``call_tool``) and of a ``MSG_LOOP`` line, as
    the error boost and the budget make them; the report shows them as "10 % -> 23 %" per window."""
    sampler, logs = telemetry.sampler, telemetry.log_sampler
    if sampler is None:
        return None

    def probe() -> dict[str, Any]:
        out: dict[str, Any] = {"boost": round(sampler.error_signal.level(time.monotonic()), 2)}
        turn = sampler.effective_rates().get(f"{service}/call_tool")
        if turn is not None:
            out["turn_keep"] = (turn["base"], turn["effective"])
        line = logs.effective_rates().get("MSG_LOOP") if logs is not None else None
        if line is not None:
            out["log_keep"] = (line["base"], line["effective"])
        return out

    return probe


def _stop_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd, Kubernetes) stops the demo as Ctrl-C does: the main task is cancelled and
    every ``finally`` runs: held traces decided, the last metric collection written, Postgres stopped."""
    task = asyncio.current_task()
    if task is None:
        return
    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals here (a thread, Windows)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def _report(result: LoadResult, stack: DemoStack) -> dict[str, Any]:
    telemetry = stack.telemetry
    assert telemetry is not None
    families = len(list(telemetry.registry.collect()))
    spans_file = stack.settings.tracing.spans_file
    extra: dict[str, Any] = {}
    if telemetry.sampler is not None:
        stats = telemetry.sampler.stats()
        stats.pop("boost_by_key", None)
        extra["sampling"] = stats
    if telemetry.sink is not None:
        sink = telemetry.sink.stats()
        keys = ("enqueued", "written", "spooled", "dropped", "breaker", "queue_rows", "spool_bytes")
        extra["sink"] = {k: sink[k] for k in keys if k in sink}
    if telemetry.log_sampler is not None:
        extra["logs"] = telemetry.log_sampler.stats()
    if stack.sieve.loop_monitor is not None:
        extra["event_loop"] = {"max_lag_ms": round(stack.sieve.loop_monitor.max_lag_s * 1000, 1)}
    settings = stack.settings
    extra["setup"] = {
        "history_index": settings.demo.with_index,
        "quiet_gaps_s": [list(q) for q in result.quiet],
        "db_connect_delay_s": settings.service.db_connect_delay_s,
        "file_lookups": "one query" if settings.service.batch_file_lookups else "one per file",
    }
    if telemetry.sink is not None:
        # This run's window only: an earlier run's spans in the same database are not this run's story.
        since_s = time.monotonic() - result.started_at + 1.0
        extra.update(_slow_lookups(settings.sink.dsn or stack.database.dsn, since_s))
    return build_report(
        result,
        stack.stats.snapshot(),
        metrics_url=telemetry.metrics_url,
        metric_families=families,
        spans_file=str(spans_file) if spans_file else None,
        extra=extra,
    )


def _slow_lookups(dsn: str, since_s: float) -> dict[str, Any]:
    """The run's slow lookups as the sink has them, diagnosed: what `sieve slow-lookups` prints."""
    from datetime import timedelta

    from pipeline.slowlookups import collect_report
    from pipeline.slowlookups.render import render_text, to_dict

    try:
        report = collect_report(dsn, timedelta(seconds=since_s))
    except SieveError as exc:  # the report still shows everything else
        return {"slow_lookups_text": f"slow lookups: not available ({exc})"}
    return {"slow_lookups": to_dict(report), "slow_lookups_text": render_text(report)}


async def _progress(load: LoadGenerator, stack: DemoStack, duration_s: float, out: TextIO) -> None:
    tty = out.isatty()
    last_line = 0.0
    while True:
        await asyncio.sleep(1.0)
        r = load.result
        elapsed = time.monotonic() - r.started_at
        b0, b1 = r.burst
        burst = " [error burst]" if b0 <= elapsed < b1 else ""
        line = (
            f"[{elapsed:5.0f}/{duration_s:.0f} s] turns {r.turns:6d}  errors {r.error_count:5d}  "
            f"spans {stack.stats.total:7d}{burst}"
        )
        if tty:
            print("\r" + line.ljust(90), end="", file=out, flush=True)
        elif elapsed - last_line >= 5:
            print(line, file=out, flush=True)
            last_line = elapsed


def _write(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def _where(settings: Settings) -> str:
    return "existing server from DSN" if settings.database.dsn else f"embedded, data in {settings.database.data_dir}"
