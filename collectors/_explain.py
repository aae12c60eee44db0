"""Plans of slow reads, captured off the hot path.

A slow read's statement and parameters go into a small queue (``submit`` never waits and never raises); one
task takes them, and for a fingerprint it has not explained lately runs ``EXPLAIN (FORMAT JSON)`` on a
connection of its own, in a READ ONLY transaction that is always rolled back, under a statement timeout and a
rate limit. ``EXPLAIN ANALYZE`` (which runs the statement) happens only when ``analyze=True``. The plan becomes
an ``EXPLAIN`` span, child of the slow operation's span, so it travels with the trace through tail sampling
into any trace store and into the Postgres sink (``spans.explain_plan``). Writes are never explained: the caller
only submits statements Postgres' parser calls a plain SELECT.

Parameter values are held in memory until the EXPLAIN runs and are never recorded: the literals EXPLAIN prints
in a plan's conditions are replaced by ``$n`` before the plan leaves this module.

Every EXPLAIN span carries a plan hash (``sieve.db.plan_hash``), so slow calls can be grouped by plan. It is the
shape of the statement's *generic* plan (``EXPLAIN (GENERIC_PLAN)``, Postgres 16+, on the normalised statement):
one plan per statement shape whatever the parameter values, so it changes when an index or the statistics change
the plan, not when one call reads a bigger group than another (their custom plans may differ). Where the generic
plan cannot be made (an older server, a parameter whose type Postgres cannot infer) the captured plan's shape is
hashed instead; ``sieve.db.plan_hash.source`` says which.

To know the plan *in force*, not only the plan of slow calls, a read whose fingerprint has had no capture within
``cache_ttl_s`` is explained too (a "baseline" capture, only while the rate limit has a token to spare for slow
reads, marked ``sieve.db.plan.baseline``): after an index makes a lookup fast, its new plan is still seen. A
baseline capture never fills the cache slow reads are answered from: a slow read's plan is taken with a slow
read's parameters. A freshly captured plan asks the sampler to keep its trace (``sieve.force_sample``), so it
reaches the sink even from a fast call; that is at most ``max_per_minute`` traces a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind

from pipeline.names import storage as n
from pipeline.ratelimit import TokenBucket
from pipeline.sqlshape import StatementInfo, plan_shape_hash, strip_literals

log = logging.getLogger(__name__)


_BASELINE_RETRY_S = 10.0


@dataclass(frozen=True)
class ExplainOptions:
    """Where and how often to EXPLAIN. ``dsn=None`` turns capture off."""

    dsn: str | None = None
    analyze: bool = False  # EXPLAIN ANALYZE runs the read a second time: opt in
    max_per_minute: float = 6.0  # EXPLAINs actually run (cached plans are free)
    cache_ttl_s: float = 300.0  # a plan is reused for its fingerprint this long
    timeout_ms: int = 2000  # statement_timeout of the EXPLAIN itself
    max_plan_bytes: int = 64 * 1024  # larger plans keep their top node only
    queue_size: int = 64


@dataclass(frozen=True)
class PlanRequest:
    """A slow read's statement and parameters, queued for a plan."""

    info: StatementInfo
    sql: str  # as the driver got it ($n for asyncpg, %s for psycopg)
    args: Sequence[Any]
    driver: str  # "asyncpg" | "psycopg"
    parent: SpanContext  # the slow operation's span
    operation: str
    baseline: bool = False  # not slow: the fingerprint had no fresh plan (see the module docstring)


# Plan fields holding SQL expressions: EXPLAIN prints them with the values of the parameters it ran with.
_EXPRESSION_KEYS = frozenset(
    {
        "Filter", "Index Cond", "Recheck Cond", "Join Filter", "Hash Cond", "Merge Cond", "One-Time Filter",
        "TID Cond", "Cache Key", "Order By", "Output", "Sort Key", "Group Key", "Presorted Key", "Hash Key",
        "Run Condition",
    }
)  # fmt: skip


def scrub_plan(node: Any) -> Any:
    """The plan with literal values in its conditions replaced by ``$n``: parameters are never recorded."""
    if isinstance(node, list):
        return [scrub_plan(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _EXPRESSION_KEYS and isinstance(value, str):
            out[key] = strip_literals(value)
        elif key in _EXPRESSION_KEYS and isinstance(value, list):
            out[key] = [strip_literals(v) if isinstance(v, str) else v for v in value]
        else:
            out[key] = scrub_plan(value)
    return out


class PlanCapturer:
    """Captures plans of slow reads on a task of its own, rate-limited and cached per fingerprint."""

    def __init__(self, options: ExplainOptions, tracer: trace.Tracer, requests: Any) -> None:
        self.options = options
        self._tracer = tracer
        self._requests = requests  # counter: sieve.db.explain.requests{outcome}
        self._queue: asyncio.Queue[PlanRequest] = asyncio.Queue(maxsize=options.queue_size)
        # fingerprint -> (captured at, plan json, plan hash, hash source): slow reads' plans, answered from the cache
        self._cache: OrderedDict[str, tuple[float, str, str | None, str]] = OrderedDict()
        self._captured: OrderedDict[str, float] = OrderedDict()  # fingerprint -> last capture of any kind
        self._pending: set[str] = set()  # fingerprints queued for a capture
        self._baseline_after: dict[str, float] = {}  # fingerprint -> no baseline capture before this (monotonic)
        self._generic_plans = True  # False once the server said it has no EXPLAIN (GENERIC_PLAN)
        # A burst of up to max_per_minute captures, then max_per_minute spread over each minute.
        self._bucket = TokenBucket(options.max_per_minute / 60.0, max(1.0, options.max_per_minute))
        self._worker: asyncio.Task[None] | None = None
        self._conns: dict[str, Any] = {}
        self._closed = False

    def wants_baseline(self, fingerprint: str) -> bool:
        """True when a read of this shape should be explained although it was fast: no fresh plan, none queued.

        One dict lookup and a clock read: cheap enough for every read statement."""
        if self._closed or fingerprint in self._pending or self._recently_captured(fingerprint):
            return False
        after = self._baseline_after.get(fingerprint)
        return after is None or time.monotonic() >= after

    def _recently_captured(self, fingerprint: str) -> bool:
        at = self._captured.get(fingerprint)
        return at is not None and time.monotonic() - at <= self.options.cache_ttl_s

    def submit(self, request: PlanRequest) -> None:
        """Called on the event loop by the slow statement's task: never waits, never raises."""
        if self._closed or not self.options.dsn:
            return
        if not request.info.read_only:
            self._count("skipped")  # defence in depth: callers already filter writes
            return
        if request.baseline:
            if not self.wants_baseline(request.info.fingerprint):
                return
        elif self._answer_from_cache(request):
            return
        try:
            self._queue.put_nowait(request)
        except asyncio.QueueFull:
            self._count("queue_full")
            return
        self._pending.add(request.info.fingerprint)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="sieve-explain")

    async def drain(self) -> None:
        """Wait until every queued request is handled (tests and shutdown)."""
        await self._queue.join()

    async def close(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for conn in self._conns.values():
            await _close_quietly(conn)
        self._conns.clear()

    # -- worker ----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            request = await self._queue.get()
            try:
                await self._capture(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad statement must not stop plan capture
                self._count("error")
                log.debug("EXPLAIN of %s failed: %r", request.info.fingerprint, exc)
            finally:
                self._pending.discard(request.info.fingerprint)
                self._queue.task_done()

    def _answer_from_cache(self, request: PlanRequest) -> bool:
        hit = self._cache.get(request.info.fingerprint)
        if hit is None or time.monotonic() - hit[0] > self.options.cache_ttl_s:
            return False
        self._emit(request, hit[1], hit[2], hit[3], cached_plan=True, start_ns=time.time_ns())
        self._count("cached")
        return True

    async def _capture(self, request: PlanRequest) -> None:
        # An earlier request of the queue may have captured this shape meanwhile.
        if request.baseline and self._recently_captured(request.info.fingerprint):
            return
        if not request.baseline and self._answer_from_cache(request):
            return
        now = time.monotonic()
        self._bucket.refill(now)
        # A baseline capture runs only with a token to spare: slow reads' captures come first.
        spare = not request.baseline or self._bucket.tokens >= 2.0
        if not spare or not self._bucket.take(1.0, now, allow_debt=False):
            self._count("rate_limited")
            if request.baseline:  # try again once a token is likely back, not on every read meanwhile
                if len(self._baseline_after) > 512:
                    self._baseline_after.clear()
                self._baseline_after[request.info.fingerprint] = now + _BASELINE_RETRY_S
            return
        start_ns = time.time_ns()
        deadline_s = self.options.timeout_ms / 1000 + 1.0
        with suppress_instrumentation():  # Sieve's own EXPLAIN is not the application's storage traffic
            plan = await asyncio.wait_for(self._explain(request), deadline_s)
            generic = await asyncio.wait_for(self._generic_plan(request), deadline_s)
        text = self._bounded(scrub_plan(plan))
        plan_hash, source = plan_shape_hash(generic), "generic"
        if plan_hash is None:
            plan_hash, source = plan_shape_hash(json.loads(text)), "captured"
        fingerprint = request.info.fingerprint
        if not request.baseline:
            self._cache[fingerprint] = (time.monotonic(), text, plan_hash, source)
            self._cache.move_to_end(fingerprint)
            while len(self._cache) > 512:
                self._cache.popitem(last=False)
        self._captured[fingerprint] = time.monotonic()
        self._captured.move_to_end(fingerprint)
        while len(self._captured) > 512:
            self._captured.popitem(last=False)
        self._emit(request, text, plan_hash, source, cached_plan=False, start_ns=start_ns)
        self._count("captured")

    async def _generic_plan(self, request: PlanRequest) -> Any:
        """The statement shape's generic plan (its parameters unknown), or None when the server cannot make one.

        Sent with no parameters bound (psycopg, no arguments): bound values, even NULLs, would be planned with."""
        if not self._generic_plans:
            return None
        conn = await self._connection("psycopg")
        try:
            await conn.execute("BEGIN READ ONLY")
            try:
                await conn.execute(f"SET LOCAL statement_timeout = {int(self.options.timeout_ms)}")
                cur = await conn.execute("EXPLAIN (GENERIC_PLAN, FORMAT JSON) " + request.info.normalised)
                row = await cur.fetchone()
            finally:
                await conn.execute("ROLLBACK")
        except Exception as exc:
            import psycopg

            if not isinstance(exc, psycopg.errors.Error) or isinstance(exc, psycopg.OperationalError):
                self._conns.pop("psycopg", None)  # the connection may be broken: a new one next time
                await _close_quietly(conn)
            elif "generic_plan" in str(exc).lower() and "unrecognized" in str(exc).lower():
                self._generic_plans = False  # Postgres < 16
            log.debug("generic plan of %s not available: %r", request.info.fingerprint, exc)
            return None
        raw = row[0] if row else None
        return json.loads(raw) if isinstance(raw, str) else raw

    async def _explain(self, request: PlanRequest) -> Any:
        verb = "EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) " if self.options.analyze else "EXPLAIN (FORMAT JSON) "
        timeout = f"SET LOCAL statement_timeout = {int(self.options.timeout_ms)}"
        conn = await self._connection(request.driver)
        try:
            if request.driver == "asyncpg":
                tx = conn.transaction(readonly=True)
                await tx.start()
                try:
                    await conn.execute(timeout)
                    raw = await conn.fetchval(verb + request.sql, *request.args)
                finally:
                    await tx.rollback()  # EXPLAIN ANALYZE of a read changes nothing, and still nothing is kept
                return json.loads(raw) if isinstance(raw, str) else raw
            await conn.execute("BEGIN READ ONLY")
            try:
                await conn.execute(timeout)
                args = request.args[0] if len(request.args) == 1 and isinstance(request.args[0], dict) else request.args
                cur = await conn.execute(verb + request.sql, args or None)
                row = await cur.fetchone()
            finally:
                await conn.execute("ROLLBACK")
            raw = row[0] if row else None
            return json.loads(raw) if isinstance(raw, str) else raw
        except Exception:
            self._conns.pop(request.driver, None)  # reconnect next time; the connection may be broken
            await _close_quietly(conn)
            raise

    async def _connection(self, driver: str) -> Any:
        conn = self._conns.get(driver)
        if conn is not None:
            return conn
        assert self.options.dsn
        if driver == "asyncpg":
            import asyncpg

            conn = await asyncpg.connect(self.options.dsn)
        else:
            import psycopg

            conn = await psycopg.AsyncConnection.connect(self.options.dsn, autocommit=True)
        self._conns[driver] = conn
        return conn

    # -- helpers ---------------------------------------------------------------------------------------

    def _bounded(self, plan: Any) -> str:
        text = json.dumps(plan, separators=(",", ":"))
        if len(text) <= self.options.max_plan_bytes:
            return text
        # Keep the top node's own fields: enough to see the node type and estimates, within the limit.
        top = plan[0]["Plan"] if isinstance(plan, list) and plan and "Plan" in plan[0] else {}
        slim = {k: v for k, v in top.items() if k != "Plans"}
        return json.dumps([{"Plan": slim, "Sieve Truncated": True}], separators=(",", ":"))

    def _emit(
        self,
        request: PlanRequest,
        plan_json: str,
        plan_hash: str | None,
        hash_source: str,
        *,
        cached_plan: bool,
        start_ns: int,
    ) -> None:
        parent = trace.set_span_in_context(NonRecordingSpan(request.parent))
        attributes: dict[str, Any] = {
            n.DB_OPERATION: request.operation,
            n.FINGERPRINT: request.info.fingerprint,
            n.QUERY_SUMMARY: request.info.summary,
            n.STATEMENT: request.info.normalised,
            n.PLAN: plan_json,
            n.PLAN_CACHED: cached_plan,
            n.PLAN_ANALYZED: self.options.analyze,
        }
        if plan_hash:
            attributes[n.PLAN_HASH] = plan_hash
            attributes[n.PLAN_HASH_SOURCE] = hash_source
        if request.baseline:
            attributes[n.PLAN_BASELINE] = True
        if not cached_plan:
            attributes[n.FORCE_SAMPLE] = True  # the plan in force must reach the sink (module docstring)
        span = self._tracer.start_span(
            "EXPLAIN", context=parent, kind=SpanKind.INTERNAL, start_time=start_ns, attributes=attributes
        )
        span.end()

    def _count(self, outcome: str) -> None:
        self._requests.add(1, {n.EXPLAIN_OUTCOME: outcome})


async def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # a broken connection: nothing left to close cleanly
        await conn.close()
