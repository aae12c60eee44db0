"""Log sampling: category rates, the error boost, and logs that follow their trace's tail decision.

Wired by the composition root::

    sampler = LogSampler(settings, error_signal=tail.error_signal, decisions=tail)
    register_log_metrics(sampler, meter_provider)
    bridge = LogBridge(logger_provider, sampler, bridge_settings).install()   # collectors.logs

Layout: ``settings``, ``rates`` (boost arithmetic), ``pending`` (pure core: held records and decision cache),
``gate`` (one category's hot-path decision), ``sampler`` (the locked shell), ``stats``, ``metrics``, ``testing``.
"""

from __future__ import annotations

from pipeline.sampling.logs.gate import CategoryGate, Stamp
from pipeline.sampling.logs.metrics import register_log_metrics
from pipeline.sampling.logs.pending import LogDecisionCache, PendingLogs
from pipeline.sampling.logs.rates import ErrorLevel, boosted_rate, combined_probability, rate_multiplier
from pipeline.sampling.logs.sampler import DecisionListener, DecisionSource, LogSampler
from pipeline.sampling.logs.settings import OLD_DAEMON_RATES, LogSamplingSettings

__all__ = [
    "OLD_DAEMON_RATES",
    "CategoryGate",
    "DecisionListener",
    "DecisionSource",
    "ErrorLevel",
    "LogDecisionCache",
    "LogSampler",
    "LogSamplingSettings",
    "PendingLogs",
    "Stamp",
    "boosted_rate",
    "combined_probability",
    "rate_multiplier",
    "register_log_metrics",
]
