"""``sieve dashboards push``: Sieve's folder, data sources and dashboards into a Grafana you already run.

Grafana is reached with ``grafana-client``'s conventions: ``GRAFANA_URL`` (or ``--url``; ``user:password@`` in
the URL works, ``?verify=false`` skips TLS verification), ``GRAFANA_TOKEN`` (a service account token) and
``GRAFANA_TIMEOUT`` (seconds). Each data source setting is a flag or its ``SIEVE_GRAFANA__*`` variable; the
Postgres password is read from ``SIEVE_GRAFANA__PG_PASSWORD`` only, never from a flag (flags end up in shell
history and ``ps``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipeline.grafana import resources
from pipeline.grafana.datasources import DEFAULT_SCRAPE_INTERVAL, DataSourceSettings, PostgresSettings
from pipeline.grafana.push import GrafanaLike, Publisher, PushError

ENV_PREFIX = "SIEVE_GRAFANA__"
PASSWORD_ENV = ENV_PREFIX + "PG_PASSWORD"
DEFAULT_PROMETHEUS_URL = "http://localhost:9090"

# (flag, environment variable, default, help). The Postgres data source is pushed when a host is known.
_SETTINGS: tuple[tuple[str, str, str | None, str], ...] = (
    ("--prometheus-url", "PROMETHEUS_URL", DEFAULT_PROMETHEUS_URL, "Prometheus as Grafana's server reaches it"),
    ("--scrape-interval", "SCRAPE_INTERVAL", DEFAULT_SCRAPE_INTERVAL, "Prometheus' scrape interval"),
    ("--pg-host", "PG_HOST", None, "Postgres host:port as Grafana reaches it (no Postgres data source if unset)"),
    ("--pg-database", "PG_DATABASE", "sieve", "database with the monitoring schema"),
    ("--pg-user", "PG_USER", "grafana", "login role that is a member of sieve_reader"),
    ("--pg-sslmode", "PG_SSLMODE", "disable", "disable, require, verify-ca or verify-full"),
    ("--jaeger-url", "JAEGER_URL", None, "add a Jaeger data source and exemplar links to it"),
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``dashboards push`` to the ``sieve`` command's subparsers; returns the ``dashboards`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser("dashboards", help="Grafana dashboards")
    commands = parser.add_subparsers(dest="dashboards_command", required=True)
    push = commands.add_parser(
        "push",
        help="create or update Sieve's folder, data sources and dashboards in a Grafana",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    push.add_argument("--url", help="Grafana URL (default: $GRAFANA_URL)")
    for flag, env, default, text in _SETTINGS:
        shown = f"; default {default}" if default else ""
        push.add_argument(flag, help=f"{text} (env {ENV_PREFIX}{env}{shown})")
    push.add_argument(
        "--skip-datasources", action="store_true", help="push the folder and dashboards only (data sources exist)"
    )
    return parser


def _setting(
    args: argparse.Namespace, environ: Mapping[str, str], flag: str, env: str, default: str | None
) -> str | None:
    value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
    return value or environ.get(ENV_PREFIX + env) or default


def datasource_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> DataSourceSettings | None:
    """The data sources to push, from flags, then ``SIEVE_GRAFANA__*``, then defaults; ``None`` to skip them."""
    if args.skip_datasources:
        return None
    values = {env: _setting(args, environ, flag, env, default) for flag, env, default, _ in _SETTINGS}
    postgres = None
    if values["PG_HOST"]:
        postgres = PostgresSettings(
            host=str(values["PG_HOST"]),
            database=str(values["PG_DATABASE"]),
            user=str(values["PG_USER"]),
            password=environ.get(PASSWORD_ENV) or None,
            sslmode=str(values["PG_SSLMODE"]),
        )
    return DataSourceSettings(
        prometheus_url=str(values["PROMETHEUS_URL"]),
        postgres=postgres,
        jaeger_url=values["JAEGER_URL"],
        scrape_interval=str(values["SCRAPE_INTERVAL"]),
    )


def connect(url: str | None, environ: Mapping[str, str]) -> GrafanaLike:
    """A ``GrafanaApi`` for ``url`` (else ``GRAFANA_URL``) with ``GRAFANA_TOKEN`` and ``GRAFANA_TIMEOUT``."""
    from grafana_client import GrafanaApi

    url = url or environ.get("GRAFANA_URL")
    if not url:
        raise PushError("no Grafana URL: pass --url or set GRAFANA_URL (e.g. http://localhost:3000)")
    timeout_text = environ.get("GRAFANA_TIMEOUT", "5")
    try:
        timeout = float(timeout_text)
    except ValueError:
        raise PushError(f"GRAFANA_TIMEOUT={timeout_text!r}: expected a number of seconds") from None
    api: GrafanaLike = GrafanaApi.from_url(url, credential=environ.get("GRAFANA_TOKEN") or None, timeout=timeout)
    return api


def _without_credentials(url: str) -> str:
    """``url`` without ``user:password@`` (it is printed in error messages)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def run(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    connector: Callable[[str | None, Mapping[str, str]], GrafanaLike] = connect,
) -> int:
    """Run ``sieve dashboards <command>``; 0 on success, 1 with a message on stderr otherwise."""
    environ = os.environ if environ is None else environ
    if args.dashboards_command != "push":
        raise AssertionError(args.dashboards_command)
    where = _without_credentials(args.url or environ.get("GRAFANA_URL") or "")
    try:
        dashboards = resources.load_dashboards()
        datasources = datasource_settings(args, environ)
        api = connector(args.url, environ)
        report = Publisher(api).push(dashboards, datasources)
    except (PushError, resources.DashboardFilesError) as exc:
        print(f"sieve dashboards push{f' to {where}' if where else ''}: {exc}", file=sys.stderr)
        return 1
    for line in report.actions:
        print(line)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if datasources is not None and datasources.postgres is None:
        print(
            f"note: no Postgres data source pushed (set --pg-host or {ENV_PREFIX}PG_HOST); "
            "the storage dashboard's slow-lookups table needs it",
            file=sys.stderr,
        )
    return 0
