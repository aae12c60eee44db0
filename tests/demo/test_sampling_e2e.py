"""Tail sampling through the demo service: errors and slow lookups kept whole, the rest near the baseline rate,
span metrics exact."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.demo.client import DemoClient
from pipeline.names import sampling as names
from pipeline.sampling.defaults import BASELINE_PERCENTAGE
from tests.demo.conftest import Running

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_errors_and_slow_turns_are_kept_whole_and_the_rest_near_the_rate(sampled_demo: Running) -> None:
    demo = sampled_demo
    client = await DemoClient.connect(demo.url)
    await client.hello(demo.settings.service.token)
    ordinary = 200
    for i in range(ordinary):
        assert (await client.call_tool("chat", {"prompt": "x", "continuation_id": f"o-{i % 7}"})).ok
    demo.provider.failure_rate = 1.0
    failed = await client.call_tool("chat", {"prompt": "x", "continuation_id": "e-1"})
    demo.provider.failure_rate = 0.0
    assert not failed.ok
    # A slow turn: the provider takes longer than the latency policy's threshold (500 ms).
    demo.provider._settings = demo.provider._settings.model_copy(update={"latency_median_s": 0.6, "latency_sigma": 0})
    slow = await client.call_tool("chat", {"prompt": "x", "continuation_id": "s-1"})
    assert slow.ok
    await client.close()

    spans = demo.finished_spans()  # force_flush decides every trace still held
    roots = [s for s in spans if s.name == "call_tool"]
    by_trace: dict[int, list] = {}  # type: ignore[type-arg]
    for s in spans:
        by_trace.setdefault(s.context.trace_id, []).append(s)

    def trace_of(request_id: str) -> list:  # type: ignore[type-arg]
        root = next(r for r in roots if r.attributes["websocket.message.request_id"] == request_id)
        return by_trace[root.context.trace_id]

    error_trace = trace_of(failed.request_id)
    names_in_error_trace = {s.name for s in error_trace}
    assert {"call_tool", "get_conversation_by_continuation_id", "get_conversation_messages", "chat sim-1"} <= (
        names_in_error_trace
    )
    assert "save_conversation" in names_in_error_trace or "get_conversation_messages" in names_in_error_trace
    assert {s.attributes["sieve.sampling.reason"] for s in error_trace} == {"errors"}
    assert all(s.attributes["sieve.sampling.probability"] == 1.0 for s in error_trace)

    slow_trace = trace_of(slow.request_id)
    assert {s.attributes["sieve.sampling.reason"] for s in slow_trace} == {"slow-traces"}
    assert "save_messages" in {s.name for s in slow_trace}

    kept_ordinary = [r for r in roots if r.attributes["sieve.sampling.reason"] == "baseline"]
    # Binomial(200, BASELINE_PERCENTAGE=10%): mean 20, sd 4.2; these bounds are about 3.5 sd wide.
    assert 5 <= len(kept_ordinary) <= 36, len(kept_ordinary)
    for root in kept_ordinary:
        assert root.attributes["sieve.sampling.adjusted_count"] == pytest.approx(100 / BASELINE_PERCENTAGE)
        assert "ot=th:" in str(root.context.trace_state.to_header())
    # Counts rebuilt from kept data alone: sum of adjusted counts of kept roots estimates all turns.
    estimate = sum(r.attributes["sieve.sampling.adjusted_count"] for r in roots)
    assert abs(estimate - (ordinary + 2)) < ordinary * 0.6  # a loose bound: one run's estimate of 200 at p=0.1

    # Span metrics are computed before sampling: exact, whatever was dropped.
    url = demo.telemetry.metrics_url
    assert url
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    # One series per status code; together they count every turn.
    calls = sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == names.SPAN_CALLS.prometheus_name and s.labels.get("span_name") == "call_tool"
    )
    assert calls == ordinary + 2
