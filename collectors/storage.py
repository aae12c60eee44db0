"""Storage instrumentation: the drivers' statement spans plus what they lack.

The contrib instrumentations for asyncpg and psycopg give one CLIENT span per statement (query text, no
parameters). They do not show what the old system needed to see (docs/background.md section 3): how
long a repository call waited for a pooled connection, how long opening a connection took, and how long the
statements ran. This module adds:

- an operation-level span per repository call (``get_conversation_messages``) that parents the statement spans,
  carries ``sieve.db.pool_wait_s``, ``sieve.db.connect_s`` and ``sieve.db.execute_s``, and records
  ``db.client.operation.duration`` per operation;
- pool acquisition timing (``db.client.connection.wait_time``), connection set-up timing
  (``db.client.connection.create_time``, plus a ``connect`` span when it happens inside an operation), use time,
  and pool size by state.

Connections handed out by ``acquire_asyncpg``/``acquire_psycopg`` observe each statement (``_db_proxy``): its
shape gets a fingerprint (``pipeline.sqlshape``) on the operation span and on the driver's statement span; an
operation slower than its threshold is marked ``sieve.db.slow`` (the tail sampler keeps its trace), and a read
statement slower than its threshold is explained off the hot path (``_explain``), the plan joining the trace.

Statement parameters are never captured unless ``capture_parameters=True``. asyncpg's pool reset query (run on
every release) is not traced: it would add a misleading ``SELECT`` span to every operation.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from collectors._db_proxy import AsyncpgConnection, PsycopgConnection
from collectors._explain import ExplainOptions, PlanCapturer, PlanRequest
from pipeline import metering
from pipeline.metering import DeferredHistogram
from pipeline.names import storage as n
from pipeline.sqlshape import StatementInfo, statement_info

__all__ = ["ExplainOptions", "Operation", "StorageTelemetry", "instrument_drivers", "uninstrument_drivers"]

_SCOPE = "sieve.collectors.storage"
_SYSTEM = "postgresql"
_QUERY_TEXT = "db.query.text"  # stable database semantic conventions
_STATEMENT_OLD = "db.statement"  # what the contrib instrumentations write by default


def instrument_drivers(tracer_provider: TracerProvider | None = None, *, capture_parameters: bool = False) -> None:
    """Turn on the contrib asyncpg and psycopg instrumentations (idempotent).

    Call before pools open: psycopg is traced by wrapping ``connect``, so connections made earlier are not.
    """
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    asyncpg_instr = AsyncPGInstrumentor(capture_parameters=capture_parameters)
    if not asyncpg_instr.is_instrumented_by_opentelemetry:
        asyncpg_instr.instrument(tracer_provider=tracer_provider)
    psycopg_instr = PsycopgInstrumentor()
    if not psycopg_instr.is_instrumented_by_opentelemetry:
        psycopg_instr.instrument(tracer_provider=tracer_provider, capture_parameters=capture_parameters)


def uninstrument_drivers() -> None:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    AsyncPGInstrumentor().uninstrument()
    PsycopgInstrumentor().uninstrument()


@dataclass
class Operation:
    """Timings of one repository call, filled in while it runs."""

    name: str
    span: trace.Span
    pool_wait_s: float = 0.0
    connect_s: float = 0.0
    execute_s: float = 0.0
    rows: int | None = None
    statements: int = 0
    slowest: StatementInfo | None = None
    slowest_s: float = -1.0
    connects: int = 0
    pool: str = ""
    pool_idle_s: float | None = None
    pool_max: int | None = None
    reopened: bool = False  # a connection the pool had closed after idling was opened again for this operation
    _rows_seen: int | None = field(default=None, repr=False)
    _shapes: dict[str, int] = field(default_factory=dict, repr=False)  # statements run per fingerprint

    def returned(self, rows: int) -> None:
        self.rows = rows


_current: contextvars.ContextVar[Operation | None] = contextvars.ContextVar("sieve_db_operation", default=None)
# The statement being run by the proxy, for the driver's statement span that starts inside the driver call.
_statement: contextvars.ContextVar[StatementInfo | None] = contextvars.ContextVar("sieve_db_statement", default=None)


class _StatementStamper(SpanProcessor):
    """Puts the statement's fingerprint on the driver's CLIENT span as it starts.

    The contrib instrumentations create that span inside the driver call, where nothing of Sieve's runs; the
    proxy sets ``_statement`` around the call and this processor reads it in ``on_start``, which runs in the
    same task, so the value is the right one even with many statements in flight. Outside a proxy (a service
    instrumented by ``opentelemetry-instrument`` alone) the statement text the driver span carries is read
    instead; both are cached per statement text.
    """

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if span.kind is not SpanKind.CLIENT:
            return
        info = _statement.get()
        if info is None:
            attributes = span.attributes or {}
            text = attributes.get(_QUERY_TEXT) or attributes.get(_STATEMENT_OLD)
            if not isinstance(text, str) or n.FINGERPRINT in attributes:
                return
            # psycopg's spans show %s placeholders; asyncpg's $n. Postgres' parser needs $n.
            info = statement_info(text, pyformat="%" in text)
        span.set_attribute(n.FINGERPRINT, info.fingerprint)
        span.set_attribute(n.QUERY_SUMMARY, info.summary)


@dataclass
class _PoolInfo:
    sizes: Callable[[], tuple[int, int]]
    max_size: int | None = None
    idle_lifetime_s: float | None = None
    last_release: float | None = None
    peak_size: int = 0  # the most connections seen open at once


def _size(info: _PoolInfo | None) -> int | None:
    if info is None:
        return None
    try:
        idle, used = info.sizes()
    except Exception:  # a closed pool
        return None
    return idle + used


class StorageTelemetry:
    """The storage collector: one span and duration per repository operation, pool timings, statement fingerprints and
    plans of slow reads."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        namespace: str | None = None,
        slow_threshold_ms: float = 20.0,
        slow_thresholds_ms: Mapping[str, float] | None = None,
        explain: ExplainOptions | None = None,
        statement_spans: bool = False,
    ) -> None:
        """``slow_threshold_ms`` (or its per-operation override) marks an operation slow; a read statement that
        alone takes that long is explained as configured by ``explain`` (off when None or without a dsn).
        ``statement_spans`` keeps the drivers' statement spans under each operation span (off: the operation's
        span is the call's one span)."""
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = get_meter(_SCOPE, meter_provider=meter_provider)
        self._namespace = namespace
        self._statement_spans = statement_spans
        self._slow_s = slow_threshold_ms / 1000.0
        self._slow_by_op_s = {k: v / 1000.0 for k, v in (slow_thresholds_ms or {}).items()}
        self._plans = (
            PlanCapturer(explain, self._tracer, metering.counter(meter, n.EXPLAIN_REQUESTS))
            if explain is not None and explain.dsn
            else None
        )
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        add_processor = getattr(provider, "add_span_processor", None)
        if add_processor is not None:  # an SDK provider; the API's no-op provider has nothing to stamp
            add_processor(_StatementStamper())

        # Recorded on the event loop for every call: deferred (a list append), merged into the SDK at collection.
        self._duration = DeferredHistogram(
            meter, n.OPERATION_DURATION, (n.DB_SYSTEM, n.DB_OPERATION, n.DRIVER, n.ERROR_TYPE)
        )
        self._wait = DeferredHistogram(meter, n.CONNECTION_WAIT, (n.POOL_NAME,))
        self._create = DeferredHistogram(meter, n.CONNECTION_CREATE, (n.POOL_NAME,))
        self._use = DeferredHistogram(meter, n.CONNECTION_USE, (n.POOL_NAME,))
        self._pools: dict[str, _PoolInfo] = {}
        metering.observable_up_down_counter(meter, n.CONNECTION_COUNT, self._observe_pools)

    # -- repository operations -------------------------------------------------------------------------

    @asynccontextmanager
    async def operation(self, name: str, *, driver: str) -> AsyncIterator[Operation]:
        """One span and one duration for one repository call.

        The span is the call's CLIENT span: statements run through the connections of ``acquire_asyncpg`` /
        ``acquire_psycopg`` are described on it (fingerprint, statement, count) instead of each getting a driver
        span of its own, unless ``statement_spans`` was asked for. Attributes known at the end are set in one call.
        """
        attributes: dict[str, Any] = {n.DB_SYSTEM: _SYSTEM, n.DB_OPERATION: name, n.DRIVER: driver}
        if self._namespace:
            attributes[n.DB_NAMESPACE] = self._namespace
        t0 = time.perf_counter()
        with self._tracer.start_as_current_span(
            name,
            kind=SpanKind.INTERNAL if self._statement_spans else SpanKind.CLIENT,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            op = Operation(name, span)
            token = _current.set(op)
            error = ""
            try:
                yield op
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
                _current.reset(token)
                total = time.perf_counter() - t0
                span.set_attributes(self._describe(op, error))
                self._duration.record(total, _SYSTEM, name, driver, error)

    # -- asyncpg ---------------------------------------------------------------------------------------

    def asyncpg_connect(self, pool_name: str, connect: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """A ``connect=`` callable for ``asyncpg.create_pool`` that times connection set-up (of ``connect``,
        default ``asyncpg.connect``)."""
        import asyncpg

        inner = connect or asyncpg.connect

        async def timed_connect(*args: Any, **kwargs: Any) -> Any:
            async with self._connecting(pool_name):
                return await inner(*args, **kwargs)

        return timed_connect

    @asynccontextmanager
    async def acquire_asyncpg(self, pool: Any, pool_name: str) -> AsyncIterator[Any]:
        """``pool.acquire()`` with wait and use times; the release's reset query is not traced."""
        op = _current.get()
        before = (op.connect_s, op.connects) if op else (0.0, 0)
        t0 = time.perf_counter()
        conn = await pool.acquire()
        waited = time.perf_counter() - t0
        self._acquired(op, pool_name, waited, before)
        t1 = time.perf_counter()
        try:
            yield AsyncpgConnection(conn, self._statement_call)
        finally:
            self._released(op, pool_name, time.perf_counter() - t1)
            with suppress_instrumentation():
                await pool.release(conn)

    def watch_asyncpg_pool(self, pool: Any, pool_name: str, *, idle_lifetime_s: float | None = None) -> None:
        """Report the pool's sizes; ``idle_lifetime_s`` (its ``max_inactive_connection_lifetime``, which asyncpg
        does not expose) lets a slow operation say its connection was re-opened after the pool sat idle."""
        self._pools[pool_name] = _PoolInfo(
            lambda: (pool.get_idle_size(), pool.get_size() - pool.get_idle_size()),
            max_size=pool.get_max_size(),
            idle_lifetime_s=idle_lifetime_s or None,
        )

    # -- psycopg ---------------------------------------------------------------------------------------

    def psycopg_connection_class(self, pool_name: str) -> type[psycopg.AsyncConnection[Any]]:
        """A ``connection_class=`` for ``psycopg_pool.AsyncConnectionPool`` that times connection set-up."""
        telemetry = self

        class TimedAsyncConnection(psycopg.AsyncConnection):
            """A psycopg connection whose set-up is timed as the pool's connection create time."""

            @classmethod
            async def connect(cls, *args: Any, **kwargs: Any) -> Any:
                async with telemetry._connecting(pool_name):
                    return await super().connect(*args, **kwargs)

        return TimedAsyncConnection

    @asynccontextmanager
    async def acquire_psycopg(self, pool: Any, pool_name: str) -> AsyncIterator[Any]:
        op = _current.get()
        before = (op.connect_s, op.connects) if op else (0.0, 0)
        t0 = time.perf_counter()
        async with pool.connection() as conn:
            self._acquired(op, pool_name, time.perf_counter() - t0, before)
            t1 = time.perf_counter()
            try:
                yield PsycopgConnection(conn, self._statement_call)
            finally:
                self._released(op, pool_name, time.perf_counter() - t1)

    def watch_psycopg_pool(self, pool: Any, pool_name: str) -> None:
        def sizes() -> tuple[int, int]:
            stats = pool.get_stats()
            idle = stats.get("pool_available", 0)
            return idle, stats.get("pool_size", 0) - idle

        self._pools[pool_name] = _PoolInfo(sizes, max_size=pool.max_size, idle_lifetime_s=pool.max_idle)

    # -- shared ----------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _connecting(self, pool_name: str) -> AsyncIterator[None]:
        op = _current.get()
        t0 = time.perf_counter()
        # Only a connection opened on behalf of an operation gets a span; pool warm-up is a metric only.
        span = (
            self._tracer.start_span(
                "connect", kind=SpanKind.CLIENT, attributes={n.DB_SYSTEM: _SYSTEM, n.POOL_NAME: pool_name}
            )
            if op is not None
            else None
        )
        try:
            yield
        except BaseException as exc:
            if span is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            elapsed = time.perf_counter() - t0
            if span is not None:
                span.end()
            if op is not None:
                op.connect_s += elapsed
                op.connects += 1
            self._create.record(elapsed, pool_name)

    def _acquired(self, op: Operation | None, pool_name: str, waited_s: float, before: tuple[float, int]) -> None:
        self._wait.record(waited_s, pool_name)
        info = self._pools.get(pool_name)
        size = _size(info)
        if op is not None:
            connect_before, connects_before = before
            # Waiting excludes any connection set-up that happened during the acquire: that is connect_s.
            op.pool_wait_s += max(0.0, waited_s - (op.connect_s - connect_before))
            op.pool = pool_name
            if info is not None:
                op.pool_max = info.max_size
                if info.last_release is not None:
                    op.pool_idle_s = max(0.0, time.monotonic() - waited_s - info.last_release)
                if op.connects > connects_before and info.idle_lifetime_s and size is not None:
                    # A connection opened while the pool is no bigger than it has been re-opens one the pool
                    # closed (idle longer than its lifetime); one that makes the pool bigger is growth under load.
                    op.reopened = op.reopened or size <= info.peak_size
        if info is not None and size is not None:
            info.peak_size = max(info.peak_size, size)

    def _released(self, op: Operation | None, pool_name: str, used_s: float) -> None:
        self._use.record(used_s, pool_name)
        info = self._pools.get(pool_name)
        if info is not None:
            info.last_release = time.monotonic()
        if op is not None:
            op.execute_s += used_s

    # -- statements ------------------------------------------------------------------------------------

    def slow_threshold_s(self, operation: str) -> float:
        return self._slow_by_op_s.get(operation, self._slow_s)

    @asynccontextmanager
    async def _statement_call(
        self, sql: str, args: Sequence[Any], *, driver: str, pyformat: bool
    ) -> AsyncIterator[Callable[[int | None], None]]:
        info = statement_info(sql, pyformat=pyformat)
        op = _current.get()
        rows: list[int | None] = [None]
        token = _statement.set(info)
        # Inside an operation its span describes the statement: the driver's own span would say the same again.
        quiet = None
        if op is not None and not self._statement_spans:
            # The key the contrib instrumentations check (what suppress_instrumentation() sets), on the current
            # context: the operation's span stays current for anything else the driver call does.
            quiet = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        t0 = time.perf_counter()
        try:
            yield lambda count: rows.__setitem__(0, count)
        finally:
            elapsed = time.perf_counter() - t0
            if quiet is not None:
                otel_context.detach(quiet)
            _statement.reset(token)
        # Only a statement that returned normally gets here: a failed one has nothing to explain.
        if op is None:
            return
        op.statements += 1
        op.execute_s += elapsed  # the driver's own time: what slowness is judged on (not the loop's queueing)
        op._shapes[info.fingerprint] = op._shapes.get(info.fingerprint, 0) + 1
        if rows[0] is not None:
            op._rows_seen = (op._rows_seen or 0) + rows[0]
        if elapsed > op.slowest_s:
            op.slowest, op.slowest_s = info, elapsed
        if self._plans is not None and info.read_only and elapsed >= self.slow_threshold_s(op.name):
            context = op.span.get_span_context()
            self._plans.submit(PlanRequest(info, sql, tuple(args), driver, context, op.name))
        # -- the plan in force, also for fast reads (a baseline capture; see collectors/_explain.py) --
        elif self._plans is not None and info.read_only and self._plans.wants_baseline(info.fingerprint):
            context = op.span.get_span_context()
            self._plans.submit(PlanRequest(info, sql, tuple(args), driver, context, op.name, baseline=True))

    def _describe(self, op: Operation, error: str) -> dict[str, Any]:
        """The operation span's attributes known only at its end: timings, statement identity, slowness.

        Slow means one measured part of the call (the driver's statement time, connection set-up or the wait for a
        pooled connection) reached the threshold: the gaps between them, where a busy event loop queues the
        coroutine, do not count, so a loaded process does not mark ordinary lookups slow.
        """
        attributes: dict[str, Any] = {
            n.POOL_WAIT_S: round(op.pool_wait_s, 6),
            n.CONNECT_S: round(op.connect_s, 6),
            n.EXECUTE_S: round(op.execute_s, 6),
            n.STATEMENTS: op.statements,
        }
        if error:
            attributes[n.ERROR_TYPE] = error
        rows = op.rows if op.rows is not None else op._rows_seen
        if rows is not None:
            attributes[n.ROWS] = rows
        if op.slowest is not None:
            attributes[n.FINGERPRINT] = op.slowest.fingerprint
            attributes[n.STATEMENT] = op.slowest.normalised
            attributes[n.QUERY_SUMMARY] = op.slowest.summary
        repeats = max(op._shapes.values(), default=0)
        if repeats > 1:
            attributes[n.REPEATS] = repeats
        if op.pool:
            attributes[n.POOL_NAME] = op.pool
        if op.pool_max is not None:
            attributes[n.POOL_MAX] = op.pool_max
        if op.connects:
            attributes[n.CONNECTS] = op.connects
            attributes[n.IDLE_CONNECT] = op.reopened
            if op.pool_idle_s is not None:
                attributes[n.POOL_IDLE_S] = round(op.pool_idle_s, 3)
        if max(op.execute_s, op.connect_s, op.pool_wait_s) >= self.slow_threshold_s(op.name):
            attributes[n.SLOW] = True
        return attributes

    async def drain_plans(self) -> None:
        """Wait for queued plan captures (tests, and before a report)."""
        if self._plans is not None:
            await self._plans.drain()

    async def close(self) -> None:
        """Stop plan capture and close its connections."""
        if self._plans is not None:
            await self._plans.close()

    def _observe_pools(self, _options: CallbackOptions) -> list[Observation]:
        out: list[Observation] = []
        for name, info in list(self._pools.items()):
            try:
                idle, used = info.sizes()
            except Exception:  # noqa: S112 - a closed pool: report nothing rather than break the scrape
                continue
            out.append(Observation(idle, {n.POOL_NAME: name, n.CONNECTION_STATE: "idle"}))
            out.append(Observation(used, {n.POOL_NAME: name, n.CONNECTION_STATE: "used"}))
        return out
