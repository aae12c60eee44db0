"""A simulated upstream model provider: log-normal latency, streamed chunks, and a failure rate.

The old daemon's providers (Kimi, GLM) were the slowest hop of a turn and failed in bursts; this stands in for
them so the demo's traces have a realistic third kind of child span besides storage.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from pipeline.config import ProviderSettings


class ProviderError(Exception):
    """The upstream provider failed mid-stream (timeouts, 5xx, rate limits, in the real thing)."""


class Provider:
    """The simulated model provider a turn calls: its own CLIENT span, latency, chunks and failures."""

    def __init__(
        self,
        settings: ProviderSettings,
        tracer_provider: TracerProvider | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._tracer = trace.get_tracer("sieve.demo.provider", tracer_provider=tracer_provider)
        self._rng = rng or random.Random()
        self.failure_rate = settings.failure_rate  # the load generator raises it for an error burst
        self.model = "sim-1"

    def latency_s(self) -> float:
        s = self._settings
        if s.latency_median_s <= 0:
            return 0.0
        return float(s.latency_median_s * math.exp(self._rng.gauss(0.0, s.latency_sigma)))

    async def generate(self, prompt: str, history_len: int) -> AsyncIterator[str]:
        """Stream a reply in chunks, inside a CLIENT span shaped by the GenAI semantic conventions."""
        chunks = self._settings.chunks
        total_s = self.latency_s()
        fail_at = self._rng.randrange(chunks) if self._rng.random() < self.failure_rate else -1
        # Not start_as_current_span: a generator that attaches context leaks it into the consumer between
        # chunks (the consumer's sends would nest under the provider span).
        span = self._tracer.start_span(
            f"chat {self.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "simulated",
                "gen_ai.request.model": self.model,
                "sieve.demo.history_messages": history_len,
            },
        )
        try:
            words = prompt.split() or ["ok"]
            out_tokens = 0
            for i in range(chunks):
                await asyncio.sleep(total_s / chunks)
                if i == fail_at:
                    raise ProviderError(f"upstream failed after {i} of {chunks} chunks")
                piece = " ".join(self._rng.choice(words) for _ in range(8))
                out_tokens += 8
                yield piece + " "
            span.set_attribute("gen_ai.usage.output_tokens", out_tokens)
            span.set_attribute("gen_ai.usage.input_tokens", len(words))
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.set_attribute("error.type", type(exc).__name__)
            raise
        finally:
            span.end()
