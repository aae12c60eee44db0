"""What the statement hook costs a repository read: fingerprint, rows, slow check, plan submission.

Same run, same embedded Postgres, one pooled asyncpg connection, a point read on a 10k-row table (the cheapest
real lookup, so the hook's share is as large as it gets). Microseconds per repository call, medians of rounds:

* ``raw``: ``pool.acquire()`` + ``fetchrow``, no telemetry at all (the baseline);
* ``instrumented_no_hook``: Sieve's operation span, pool timing and the contrib asyncpg statement span, with the
  statement sent on the unwrapped connection (what storage telemetry cost before fingerprints);
* ``instrumented``: the same through the wrapped connection (fingerprint from the cache, contextvar for the
  statement span, rows, slow check);
* ``fingerprint_uncached_us`` / ``fingerprint_cached_ns``: pglast's parse of a new statement text, and the
  cache hit every later call of the same text pays.

    python -m bench.bench_storage [--quick]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from collectors.storage import StorageTelemetry, instrument_drivers, uninstrument_drivers
from pipeline.db import start_embedded
from pipeline.sqlshape import statement_info

READ = "SELECT id, owner, body FROM public.notes WHERE id = $1"


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def _rounds(call: Callable[[int], Awaitable[None]], calls: int, rounds: int) -> float:
    await call(min(calls, 200))  # warm-up
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await call(calls)
        samples.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(samples)


async def _measure(dsn: str, calls: int, rounds: int) -> dict[str, float]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)

    async def raw(n: int) -> None:
        for i in range(n):
            async with pool.acquire() as conn:
                await conn.fetchrow(READ, i % 10_000 + 1)

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Discard()))
    instrument_drivers(provider)
    telemetry = StorageTelemetry(provider)

    async def no_hook(n: int) -> None:
        for i in range(n):
            async with telemetry.operation("get_note", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as c:
                await c._conn.fetchrow(READ, i % 10_000 + 1)

    async def hooked(n: int) -> None:
        for i in range(n):
            async with telemetry.operation("get_note", driver="asyncpg"), telemetry.acquire_asyncpg(pool, "r") as c:
                await c.fetchrow(READ, i % 10_000 + 1)

    try:
        out: dict[str, float] = {}
        # Interleaved, so drift on a shared machine hits every variant alike.
        samples: dict[str, list[float]] = {"raw": [], "instrumented_no_hook": [], "instrumented": []}
        for _ in range(3):
            samples["raw"].append(await _rounds(raw, calls, rounds))
            samples["instrumented_no_hook"].append(await _rounds(no_hook, calls, rounds))
            samples["instrumented"].append(await _rounds(hooked, calls, rounds))
        for name, values in samples.items():
            out[f"{name}_us"] = round(statistics.median(values), 1)
        return out
    finally:
        uninstrument_drivers()
        await pool.close()


def _fingerprint_costs(rounds: int) -> dict[str, float]:
    texts = [f"SELECT a, b FROM t{i} WHERE a = $1 AND b IN (1, 2, 3) ORDER BY c DESC LIMIT 10" for i in range(rounds)]
    t0 = time.perf_counter()
    for text in texts:
        statement_info(text)
    uncached_us = (time.perf_counter() - t0) / len(texts) * 1e6
    t0 = time.perf_counter()
    for _ in range(20):
        for text in texts:
            statement_info(text)
    cached_ns = (time.perf_counter() - t0) / (20 * len(texts)) * 1e9
    return {"fingerprint_uncached_us": round(uncached_us, 1), "fingerprint_cached_ns": round(cached_ns)}


def run(quick: bool = False) -> dict[str, Any]:
    calls, rounds = (300, 3) if quick else (2000, 5)
    root = Path(tempfile.mkdtemp(prefix="sieve-bench-storage-"))
    db = start_embedded(root / "data")
    try:
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.notes (id int PRIMARY KEY, owner int, body text)")
            conn.execute("INSERT INTO public.notes SELECT g, g % 40, repeat('x', 200) FROM generate_series(1, 10000) g")
            conn.execute("ANALYZE public.notes")
        result: dict[str, Any] = asyncio.run(_measure(db.dsn, calls, rounds))
    finally:
        db.close()
    result.update(_fingerprint_costs(500 if quick else 2000))
    result["hook_us"] = round(result["instrumented_us"] - result["instrumented_no_hook_us"], 1)
    result["instrumented_vs_raw"] = round(result["instrumented_us"] / result["raw_us"], 2)
    result["hook_share_of_instrumented"] = round(result["hook_us"] / result["instrumented_us"], 3)
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
