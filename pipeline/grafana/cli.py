"""``sieve dashboards push``: Sieve's folder, data sources and dashboards into a Grafana you already run.

Every setting lives in the ``grafana`` section of the settings (:class:`pipeline.config.GrafanaSettings`): the
Grafana URL and token (also grafana-client's ``GRAFANA_URL``, ``GRAFANA_TOKEN``, ``GRAFANA_TIMEOUT``;
``user:password@`` in the URL works, ``?verify=false`` skips TLS verification) and the data sources as Grafana's
server reaches them (``SIEVE_GRAFANA__*``). Flags override them. The Postgres password is read from the settings
only (``SIEVE_GRAFANA__PG_PASSWORD``), never from a flag: flags end up in shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipeline.config import GrafanaSettings
from pipeline.grafana import resources
from pipeline.grafana.datasources import DataSourceSettings, PostgresSettings
from pipeline.grafana.push import GrafanaLike, Publisher, PushError

# (flag, settings field, help). The Postgres data source is pushed when a host is known.
_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--prometheus-url", "prometheus_url", "Prometheus as Grafana's server reaches it"),
    ("--scrape-interval", "scrape_interval", "Prometheus' scrape interval"),
    ("--pg-host", "pg_host", "Postgres host:port as Grafana reaches it (no Postgres data source if unset)"),
    ("--pg-database", "pg_database", "database with the monitoring schema"),
    ("--pg-user", "pg_user", "login role that is a member of sieve_reader"),
    ("--pg-sslmode", "pg_sslmode", "disable, require, verify-ca or verify-full"),
    ("--jaeger-url", "jaeger_url", "add a Jaeger data source and exemplar links to it"),
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
    push.add_argument("--url", help="Grafana URL (default: grafana.url, env GRAFANA_URL)")
    defaults = GrafanaSettings()
    for flag, name, text in _FLAGS:
        default = getattr(defaults, name)
        shown = f"; default {default}" if default else ""
        push.add_argument(flag, help=f"{text} (env SIEVE_GRAFANA__{name.upper()}{shown})")
    push.add_argument(
        "--skip-datasources", action="store_true", help="push the folder and dashboards only (data sources exist)"
    )
    return parser


def with_flags(args: argparse.Namespace, settings: GrafanaSettings) -> GrafanaSettings:
    """``settings`` with every flag given on the command line applied over it."""
    update = {name: getattr(args, flag.lstrip("-").replace("-", "_"), None) for flag, name, _ in _FLAGS}
    update["url"] = getattr(args, "url", None)
    return settings.model_copy(update={k: v for k, v in update.items() if v})


def datasource_settings(args: argparse.Namespace, settings: GrafanaSettings) -> DataSourceSettings | None:
    """The data sources to push; ``None`` to skip them."""
    if args.skip_datasources:
        return None
    postgres = None
    if settings.pg_host:
        postgres = PostgresSettings(
            host=settings.pg_host,
            database=settings.pg_database,
            user=settings.pg_user,
            password=settings.pg_password or None,
            sslmode=settings.pg_sslmode,
        )
    return DataSourceSettings(
        prometheus_url=settings.prometheus_url,
        postgres=postgres,
        jaeger_url=settings.jaeger_url,
        scrape_interval=settings.scrape_interval,
    )


def connect(settings: GrafanaSettings) -> GrafanaLike:
    """A ``GrafanaApi`` for ``settings.url`` with its token and timeout."""
    from grafana_client import GrafanaApi

    if not settings.url:
        raise PushError("no Grafana URL: pass --url or set GRAFANA_URL (e.g. http://localhost:3000)")
    api: GrafanaLike = GrafanaApi.from_url(settings.url, credential=settings.token or None, timeout=settings.timeout_s)
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
    settings: GrafanaSettings,
    connector: Callable[[GrafanaSettings], GrafanaLike] = connect,
) -> int:
    """Run ``sieve dashboards <command>``; 0 on success, 1 with a message on stderr otherwise."""
    if args.dashboards_command != "push":
        raise AssertionError(args.dashboards_command)
    settings = with_flags(args, settings)
    where = _without_credentials(settings.url or "")
    try:
        dashboards = resources.load_dashboards()
        datasources = datasource_settings(args, settings)
        api = connector(settings)
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
            "note: no Postgres data source pushed (set --pg-host or SIEVE_GRAFANA__PG_HOST); "
            "the storage dashboard's slow-lookups table needs it",
            file=sys.stderr,
        )
    return 0
