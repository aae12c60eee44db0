"""The log sampler's counters as OpenTelemetry observable instruments (names in ``pipeline/names/logs.py``).

Observable, not synchronous: the hot path increments plain integers and the reader collects them at export
time, so a dropped line never pays the 2-5 us of ``counter.add``.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter

from pipeline import metering
from pipeline.names import logs as n
from pipeline.sampling.logs.sampler import LogSampler
from pipeline.sampling.logs.stats import level_name

_SCOPE = "sieve.sampling.logs"


def register_log_metrics(sampler: LogSampler, meter_provider: MeterProvider) -> None:
    """Export ``sampler``'s seen / kept / dropped counts, held records and boost multiplier."""
    meter = get_meter(_SCOPE, meter_provider=meter_provider)

    def seen(_options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {n.CATEGORY: category, n.LEVEL: level_name(level_no)})
            for (category, level_no), count in sampler.counts().seen.items()
        ]

    def kept(_options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {n.CATEGORY: category, n.LEVEL: level_name(level_no), n.REASON: reason})
            for (category, level_no, reason), count in sampler.counts().kept.items()
        ]

    def dropped(_options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {n.CATEGORY: category, n.DROP_REASON: reason})
            for (category, reason), count in sampler.counts().dropped.items()
        ]

    def pending(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(sampler.pending)]

    def multiplier(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(sampler.multiplier())]

    for spec, callback in ((n.RECORDS_SEEN, seen), (n.RECORDS_KEPT, kept), (n.RECORDS_DROPPED, dropped)):
        metering.observable_counter(meter, spec, callback)
    for spec, callback in ((n.PENDING_RECORDS, pending), (n.RATE_MULTIPLIER, multiplier)):
        metering.observable_gauge(meter, spec, callback)
