"""Storage instrumentation: the drivers' statement spans plus what they lack.

The contrib instrumentations for asyncpg and psycopg give one CLIENT span per statement (query text, no
parameters). They do not show what the old system needed to see (shared/reference/old-system.md section 5.2): how
long a repository call waited for a pooled connection, how long opening a connection took, and how long the
statements ran. This module adds:

- an operation-level span per repository call (``get_conversation_messages``) that parents the statement spans,
  carries ``sieve.db.pool_wait_s``, ``sieve.db.connect_s`` and ``sieve.db.execute_s``, and records
  ``db.client.operation.duration`` per operation;
- pool acquisition timing (``db.client.connection.wait_time``), connection set-up timing
  (``db.client.connection.create_time``, plus a ``connect`` span when it happens inside an operation), use time,
  and pool size by state.

Statement parameters are never captured unless ``capture_parameters=True``. asyncpg's pool reset query (run on
every release) is not traced: it would add a misleading ``SELECT`` span to every operation.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from pipeline.names import DURATION_BUCKETS_S
from pipeline.names import storage as n

_SCOPE = "sieve.collectors.storage"
_SYSTEM = "postgresql"


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

    def returned(self, rows: int) -> None:
        self.rows = rows


_current: contextvars.ContextVar[Operation | None] = contextvars.ContextVar("sieve_db_operation", default=None)


class StorageTelemetry:
    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        namespace: str | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = get_meter(_SCOPE, meter_provider=meter_provider)
        self._namespace = namespace

        def hist(spec: Any) -> Any:
            return meter.create_histogram(
                spec.name,
                spec.unit,
                spec.description,
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S),
            )

        self._duration = hist(n.OPERATION_DURATION)
        self._wait = hist(n.CONNECTION_WAIT)
        self._create = hist(n.CONNECTION_CREATE)
        self._use = hist(n.CONNECTION_USE)
        self._pools: dict[str, Callable[[], tuple[int, int]]] = {}
        meter.create_observable_up_down_counter(
            n.CONNECTION_COUNT.name,
            callbacks=[self._observe_pools],
            unit=n.CONNECTION_COUNT.unit,
            description=n.CONNECTION_COUNT.description,
        )

    # -- repository operations -------------------------------------------------------------------------

    @asynccontextmanager
    async def operation(self, name: str, *, driver: str) -> AsyncIterator[Operation]:
        """A span and a duration for one repository call; statement spans nest under it."""
        attributes: dict[str, Any] = {n.DB_SYSTEM: _SYSTEM, n.DB_OPERATION: name, n.DRIVER: driver}
        if self._namespace:
            attributes[n.DB_NAMESPACE] = self._namespace
        t0 = time.perf_counter()
        with self._tracer.start_as_current_span(
            name,
            kind=SpanKind.INTERNAL,
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
                span.set_attribute(n.ERROR_TYPE, error)
                raise
            finally:
                _current.reset(token)
                total = time.perf_counter() - t0
                span.set_attribute(n.POOL_WAIT_S, round(op.pool_wait_s, 6))
                span.set_attribute(n.CONNECT_S, round(op.connect_s, 6))
                span.set_attribute(n.EXECUTE_S, round(op.execute_s, 6))
                if op.rows is not None:
                    span.set_attribute(n.ROWS, op.rows)
                metric_attrs = {
                    n.DB_SYSTEM: _SYSTEM,
                    n.DB_OPERATION: name,
                    n.DRIVER: driver,
                    n.ERROR_TYPE: error,
                }
                self._duration.record(total, metric_attrs)

    # -- asyncpg ---------------------------------------------------------------------------------------

    def asyncpg_connect(self, pool_name: str) -> Callable[..., Any]:
        """A ``connect=`` callable for ``asyncpg.create_pool`` that times connection set-up."""
        import asyncpg

        async def connect(*args: Any, **kwargs: Any) -> Any:
            async with self._connecting(pool_name):
                return await asyncpg.connect(*args, **kwargs)

        return connect

    @asynccontextmanager
    async def acquire_asyncpg(self, pool: Any, pool_name: str) -> AsyncIterator[Any]:
        """``pool.acquire()`` with wait and use times; the release's reset query is not traced."""
        op = _current.get()
        connect_before = op.connect_s if op else 0.0
        t0 = time.perf_counter()
        conn = await pool.acquire()
        waited = time.perf_counter() - t0
        self._acquired(op, pool_name, waited, connect_before)
        t1 = time.perf_counter()
        try:
            yield conn
        finally:
            self._released(op, pool_name, time.perf_counter() - t1)
            with suppress_instrumentation():
                await pool.release(conn)

    def watch_asyncpg_pool(self, pool: Any, pool_name: str) -> None:
        self._pools[pool_name] = lambda: (pool.get_idle_size(), pool.get_size() - pool.get_idle_size())

    # -- psycopg ---------------------------------------------------------------------------------------

    def psycopg_connection_class(self, pool_name: str) -> type[psycopg.AsyncConnection[Any]]:
        """A ``connection_class=`` for ``psycopg_pool.AsyncConnectionPool`` that times connection set-up."""
        telemetry = self

        class TimedAsyncConnection(psycopg.AsyncConnection):
            @classmethod
            async def connect(cls, *args: Any, **kwargs: Any) -> Any:
                async with telemetry._connecting(pool_name):
                    return await super().connect(*args, **kwargs)

        return TimedAsyncConnection

    @asynccontextmanager
    async def acquire_psycopg(self, pool: Any, pool_name: str) -> AsyncIterator[Any]:
        op = _current.get()
        connect_before = op.connect_s if op else 0.0
        t0 = time.perf_counter()
        async with pool.connection() as conn:
            self._acquired(op, pool_name, time.perf_counter() - t0, connect_before)
            t1 = time.perf_counter()
            try:
                yield conn
            finally:
                self._released(op, pool_name, time.perf_counter() - t1)

    def watch_psycopg_pool(self, pool: Any, pool_name: str) -> None:
        def sizes() -> tuple[int, int]:
            stats = pool.get_stats()
            idle = stats.get("pool_available", 0)
            return idle, stats.get("pool_size", 0) - idle

        self._pools[pool_name] = sizes

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
            self._create.record(elapsed, {n.POOL_NAME: pool_name})

    def _acquired(self, op: Operation | None, pool_name: str, waited_s: float, connect_before: float) -> None:
        self._wait.record(waited_s, {n.POOL_NAME: pool_name})
        if op is not None:
            # Waiting excludes any connection set-up that happened during the acquire: that is connect_s.
            op.pool_wait_s += max(0.0, waited_s - (op.connect_s - connect_before))

    def _released(self, op: Operation | None, pool_name: str, used_s: float) -> None:
        self._use.record(used_s, {n.POOL_NAME: pool_name})
        if op is not None:
            op.execute_s += used_s

    def _observe_pools(self, _options: CallbackOptions) -> list[Observation]:
        out: list[Observation] = []
        for name, sizes in list(self._pools.items()):
            try:
                idle, used = sizes()
            except Exception:  # a closed pool: report nothing rather than break the scrape
                continue
            out.append(Observation(idle, {n.POOL_NAME: name, n.CONNECTION_STATE: "idle"}))
            out.append(Observation(used, {n.POOL_NAME: name, n.CONNECTION_STATE: "used"}))
        return out
