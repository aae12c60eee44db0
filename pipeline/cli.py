"""The ``sieve`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.config import Settings, load_settings
from pipeline.errors import SieveError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sieve", description="Observability pipeline for async Python services")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--config", type=Path, help="YAML settings file (also SIEVE_CONFIG)")
    parser.add_argument("--dsn", help="use this Postgres instead of the embedded one (also SIEVE_PG_DSN)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the demo service under load and print a report")
    demo.add_argument("--duration", type=float, help="seconds of load (default 30)")
    demo.add_argument("--clients", type=int, help="concurrent WebSocket clients (default 6)")
    demo.add_argument("--serve", action="store_true", help="keep serving after the report (for Prometheus/Grafana)")
    demo.add_argument("--port", type=int, help="WebSocket port (default 8079; 0 picks a free one)")
    demo.add_argument("--metrics-port", type=int, help="Prometheus endpoint port (default 9464; 0 picks a free one)")
    demo.add_argument(
        "--with-index",
        action="store_true",
        help="add the messages (conversation_id, created_at DESC) index (default: the old schema, without it)",
    )
    demo.add_argument(
        "--fix-n-plus-one",
        action="store_true",
        help="read a conversation's files in one joined query (default: one query per file, the old daemon's N+1)",
    )

    slow = sub.add_parser(
        "slow-lookups", help="slow storage operations from the Postgres sink, grouped by statement, with a diagnosis"
    )
    slow.add_argument("--since", default="1h", help="how far back: 90s, 30m, 1h, 2d (default 1h)")
    slow.add_argument("--json", action="store_true", help="machine-readable output (shape: see the README)")
    slow.add_argument("--min-ms", type=float, default=0.0, help="count spans this slow instead of the marked ones")
    slow.add_argument("--limit", type=int, default=20, help="at most this many statement groups (default 20)")
    # -- N+1 thresholds of `sieve slow-lookups`, and `sieve trace` -------------------------------------
    slow.add_argument(
        "--n-plus-one-min-count", type=int, default=5, help="N+1: repetitions under one parent (default 5, Sentry's)"
    )
    slow.add_argument(
        "--n-plus-one-min-ms", type=float, default=0.0, help="N+1: at least this much time in them (default 0)"
    )
    trace = sub.add_parser(
        "trace", help="one kept trace from the Postgres sink as a waterfall: spans, DB time split, plans, events"
    )
    trace.add_argument("trace_id", help="32 hex digits, with or without 0x")
    trace.add_argument("--json", action="store_true", help="machine-readable output (shape: see the README)")

    from pipeline.grafana import cli as grafana_cli

    grafana_cli.add_parser(sub)
    sub.add_parser("migrate", help="apply the SQL migrations to the database")
    config = sub.add_parser("config", help="print the effective settings (secrets masked) as YAML")
    config.add_argument("--json", action="store_true", help="print JSON instead")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if args.dsn:
        o["database"] = {"dsn": args.dsn}
    if args.command == "demo":
        demo = {k: v for k, v in {"duration_s": args.duration, "clients": args.clients}.items() if v is not None}
        if args.with_index:
            demo["with_index"] = True
        if demo:
            o["demo"] = demo
        service: dict[str, Any] = {}
        if args.port is not None:
            service["port"] = args.port
        if args.fix_n_plus_one:
            service["batch_file_lookups"] = True
        if service:
            o["service"] = service
        if args.metrics_port is not None:
            o["prometheus"] = {"port": args.metrics_port}
    return o


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The demo's own defaults: a file, the environment or a flag still wins over them."""
    if args.command != "demo":
        return {}
    return {"service_name": "sieve-demo", "tracing": {"spans_file": ".sieve/demo-spans.jsonl"}}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        # The console shows this level whatever the root logger's level becomes (the log bridge lowers it to
        # collect library records for the pipeline).
        handler.setLevel(level)
    try:
        settings = load_settings(args.config, defaults=_defaults(args), **_overrides(args))
        return _run(args, settings)
    except SieveError as exc:
        print(f"sieve: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:  # a data, spool or report directory this user may not write
        print(f"sieve: permission denied: {exc.filename or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sieve")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


def _run(args: argparse.Namespace, settings: Settings) -> int:
    command = args.command
    if command == "config":
        from pipeline.config.show import render

        print(render(settings, as_json=args.json))
        return 0
    if command == "migrate":
        from pipeline.db import open_database
        from pipeline.migrate import applied, migrate

        with open_database(settings.database) as db:
            done = migrate(db.dsn)
            print(f"applied {len(done)} migration(s): {[m.path.name for m in done]}")
            print(f"database is at version {applied(db.dsn)[-1][0] if applied(db.dsn) else 0}")
        return 0
    if command == "demo":
        from pipeline.demo.run import run_demo

        try:
            asyncio.run(run_demo(settings, serve=args.serve))
        except asyncio.CancelledError:  # SIGTERM: the demo stopped cleanly, as a SIGTERM'd process exits
            return 143
        return 0
    if command == "slow-lookups":
        return _slow_lookups(args, settings)
    if command == "trace":
        return _trace(args, settings)
    if command == "dashboards":
        from pipeline.grafana import cli as grafana_cli

        return grafana_cli.run(args, settings.grafana)
    raise AssertionError(command)


def _slow_lookups(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.db import open_database
    from pipeline.slowlookups import NPlusOneOptions, collect_report
    from pipeline.slowlookups.query import parse_since
    from pipeline.slowlookups.render import render_json, render_text

    since = parse_since(args.since)
    n_plus_one = NPlusOneOptions(min_count=args.n_plus_one_min_count, min_total_ms=args.n_plus_one_min_ms)
    options: dict[str, Any] = {"min_duration_ms": args.min_ms, "limit": args.limit, "n_plus_one": n_plus_one}
    if settings.sink.dsn:
        report = collect_report(settings.sink.dsn, since, **options)
    else:
        with open_database(settings.database) as db:  # the sink lives in the application's database by default
            report = collect_report(db.dsn, since, **options)
    print(render_json(report) if args.json else render_text(report))
    return 0


def _trace(args: argparse.Namespace, settings: Settings) -> int:
    """``sieve trace``: 0 shown, 1 the sink has no such trace, 2 (SieveError) a bad id or no database."""
    from pipeline.db import open_database
    from pipeline.slowlookups.trace import load_trace, parse_trace_id, retention_days
    from pipeline.slowlookups.waterfall import no_such_trace, render_json, render_text

    trace_id = parse_trace_id(args.trace_id)  # before any database is started
    with contextlib.ExitStack() as stack:
        dsn = settings.sink.dsn or stack.enter_context(open_database(settings.database)).dsn
        view = load_trace(dsn, trace_id, connect_timeout_s=settings.database.connect_timeout_s)
        if view is None:
            print(f"sieve: {no_such_trace(trace_id, retention_days(dsn))}", file=sys.stderr)
            return 1
    print(render_json(view) if args.json else render_text(view), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
