"""The demo's load: several clients holding conversations, some on long histories, an error burst in the middle.

Clients pause between turns, and now and then for longer than the read pool keeps an idle connection, so the
next lookup pays for connection set-up: the cost the old team mistook for a slow query.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Settings
from pipeline.demo.client import DemoClient, new_traceparent
from pipeline.demo.provider import Provider
from pipeline.demo.seed import heavy_id, normal_id

_PROMPTS = [
    "summarise the last discussion about the index migration",
    "why did the deploy fail on friday",
    "list the open questions about the provider outage",
    "draft a reply to the customer about latency",
]


@dataclass
class LoadResult:
    """What a load run did: turns, errors and latencies, plus a per-second timeline for the report."""

    started_at: float
    duration_s: float = 0.0
    turns: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    slow_lookup_turns: int = 0
    traceparent_turns: int = 0
    timeline: list[dict[str, Any]] = field(default_factory=list)  # one entry per second
    burst: tuple[float, float] = (0.0, 0.0)  # seconds from start
    quiet: list[tuple[float, float]] = field(default_factory=list)  # seconds from start: no client sends

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def quiet_windows(duration_s: float, idle_lifetime_s: float) -> list[tuple[float, float]]:
    """Whole-service idle gaps, longer than the pool's idle lifetime: the old daemon's first lookup after ~22 s
    of silence paid for a new connection (docs/background.md section 3). One gap per 15 s of run, none when the run
    is too short to show one or connections never expire."""
    if idle_lifetime_s <= 0:
        return []
    gap = idle_lifetime_s * 1.6
    count = int(duration_s // 15) or (1 if duration_s >= 4 * gap else 0)
    # Away from the ends of the run and, for the default 30 s, from the error burst in the middle.
    fractions = {1: (0.25,), 2: (0.25, 0.75)}.get(count) or tuple((i + 0.5) / count for i in range(count))
    return [(round(duration_s * f, 1), round(duration_s * f + gap, 1)) for f in fractions]


class LoadGenerator:
    """Runs the demo's clients against the service for a while, with the error burst and the quiet spells."""

    def __init__(
        self,
        url: str,
        settings: Settings,
        provider: Provider,
        rng: random.Random | None = None,
        probe: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.url = url
        self.probe = probe  # extra fields for each second of the timeline (e.g. the sampler's boost level)
        self.settings = settings
        self.provider = provider
        self.rng = rng or random.Random(42)
        self.result = LoadResult(started_at=time.monotonic())
        self._second: dict[str, int] = {"turns": 0, "errors": 0}

    async def run(self, duration_s: float, *, burst: bool = True) -> LoadResult:
        demo = self.settings.demo
        self.result = LoadResult(started_at=time.monotonic())
        deadline = self.result.started_at + duration_s
        if burst and demo.error_burst_share > 0:
            start = duration_s * (0.5 - demo.error_burst_share / 2)
            self.result.burst = (start, start + duration_s * demo.error_burst_share)
        self.result.quiet = quiet_windows(duration_s, self.settings.service.pool_idle_lifetime_s)
        clients = [
            asyncio.create_task(self._client(i, deadline, i < round(demo.clients * demo.traceparent_share)))
            for i in range(demo.clients)
        ]
        ticker = asyncio.create_task(self._tick(deadline))
        try:
            await asyncio.gather(*clients, return_exceptions=True)
        finally:  # cancelled (Ctrl-C, SIGTERM): no client or ticker outlives the run
            ticker.cancel()
            for client in clients:
                client.cancel()
            self.provider.failure_rate = self.settings.provider.failure_rate
        self.result.duration_s = time.monotonic() - self.result.started_at
        return self.result

    async def _tick(self, deadline: float) -> None:
        """Once a second: the error burst switch, and one timeline entry."""
        base = self.settings.provider.failure_rate
        while time.monotonic() < deadline + 1:
            await asyncio.sleep(1.0)
            t = time.monotonic() - self.result.started_at
            b0, b1 = self.result.burst
            in_burst = b0 <= t < b1
            self.provider.failure_rate = self.settings.demo.error_burst_failure_rate if in_burst else base
            extra = self.probe() if self.probe else {}
            self.result.timeline.append({"t_s": round(t), **self._second, "burst": in_burst, **extra})
            self._second = {"turns": 0, "errors": 0}

    async def _client(self, index: int, deadline: float, sends_traceparent: bool) -> None:
        demo = self.settings.demo
        rng = random.Random(self.rng.random())
        try:
            client = await DemoClient.connect(self.url)
            await client.hello(self.settings.service.token)
        except Exception:
            self.result.errors["connect"] += 1
            return
        try:
            while time.monotonic() < deadline:
                slow = demo.heavy_conversations > 0 and rng.random() < demo.slow_lookup_share
                cid = heavy_id(rng.randrange(demo.heavy_conversations)) if slow else self._normal(rng)
                traceparent = new_traceparent()[0] if sends_traceparent else None
                tool = "analyze" if rng.random() < 0.2 else "chat"
                try:
                    turn = await client.call_tool(
                        tool, {"prompt": rng.choice(_PROMPTS), "continuation_id": cid}, traceparent=traceparent
                    )
                except Exception:
                    self.result.errors["transport"] += 1
                    self._second["errors"] += 1
                    break
                self.result.turns += 1
                self._second["turns"] += 1
                self.result.slow_lookup_turns += slow
                self.result.traceparent_turns += traceparent is not None
                self.result.latencies_s.append(turn.latency_s)
                if turn.ok:
                    self.result.ok += 1
                else:
                    self.result.errors[str((turn.error or {}).get("code", "unknown"))] += 1
                    self._second["errors"] += 1
                pause = rng.expovariate(1 / demo.think_time_s) if demo.think_time_s > 0 else 0.0
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                await self._sit_out_quiet(deadline)
        finally:
            await client.close()

    async def _sit_out_quiet(self, deadline: float) -> None:
        t = time.monotonic() - self.result.started_at
        for q0, q1 in self.result.quiet:
            if q0 <= t < q1:
                await asyncio.sleep(max(0.0, min(q1 - t, deadline - time.monotonic())))

    def _normal(self, rng: random.Random) -> str:
        # A few hot conversations and a long tail, as real usage looks.
        n = self.settings.demo.seed_conversations
        return normal_id(min(n - 1, int(rng.paretovariate(1.2)) - 1))
