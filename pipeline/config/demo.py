"""The sections of :class:`~pipeline.config.Settings` that only the demo reads: its service, provider and load."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pipeline.config.sections import Section


class ServiceSettings(Section):
    """The demo WebSocket service, shaped like the daemon Sieve replaces."""

    host: str = "127.0.0.1"
    port: int = Field(8079, ge=0, le=65535)
    token: str = "sieve-demo-token"  # noqa: S105 - the demo's documented default, guarding a loopback demo
    hello_timeout_s: float = Field(15.0, gt=0)
    max_message_bytes: int = Field(1 << 20, ge=1024)
    history_page_size: int = Field(5, ge=1, le=1000)
    progress_interval_s: float = Field(5.0, gt=0)
    # A storage call (pool wait included) that takes longer fails the turn with storage_unavailable: a database
    # that hangs must not leave clients waiting for their own timeouts.
    storage_timeout_s: float = Field(5.0, gt=0)
    turn_timeout_s: float = Field(60.0, gt=0)  # the whole turn, provider stream included
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(8, ge=1)
    # asyncpg closes connections idle this long; the next lookup then pays connection set-up. Short by default
    # so the demo reproduces the old system's story (connections re-opened after quiet gaps); 0 keeps them.
    pool_idle_lifetime_s: float = Field(3.0, ge=0)
    # Simulated extra connection set-up time, as to a managed Postgres across a network (TLS and authentication
    # round trips: the old system paid ~0.35 s). The embedded server answers over a Unix socket in ~2 ms, which
    # would hide the story; 0 shows the local truth.
    db_connect_delay_s: float = Field(0.25, ge=0)
    # The conversation's files: looked up one query per file as the old daemon did (an N+1 that `sieve
    # slow-lookups` diagnoses), or all in one joined query (`sieve demo --fix-n-plus-one`).
    batch_file_lookups: bool = False


class ProviderSettings(Section):
    """The simulated upstream model provider: a log-normal latency, streamed chunks and a failure rate."""

    latency_median_s: float = Field(0.08, ge=0)
    latency_sigma: float = Field(0.5, ge=0)
    chunks: int = Field(4, ge=1)
    failure_rate: float = Field(0.01, ge=0, le=1)


class DemoSettings(Section):
    """The load generator that `sieve demo` runs against the service."""

    duration_s: float = Field(30.0, gt=0)
    clients: int = Field(6, ge=1, le=500)
    think_time_s: float = Field(0.05, ge=0)
    slow_lookup_share: float = Field(0.1, ge=0, le=1)
    error_burst_failure_rate: float = Field(0.6, ge=0, le=1)
    error_burst_share: float = Field(0.15, ge=0, le=0.9)  # of the run, centred in the middle
    traceparent_share: float = Field(0.2, ge=0, le=1)  # clients that send a W3C traceparent
    seed_conversations: int = Field(200, ge=1)
    heavy_conversations: int = Field(4, ge=0)
    heavy_messages: int = Field(40_000, ge=0)
    files_per_conversation: int = Field(6, ge=0, le=100)  # seeded files per conversation (the N+1's items)
    # The index that serves the history read; off by default, as in the old schema (`sieve demo --with-index`).
    with_index: bool = False
    report_path: Path = Path(".sieve/demo-report.json")
