"""In-process tail sampling and pre-sampling span metrics.

Public entry points (wired by ``pipeline/bootstrap.py``):

* :class:`TailSamplingProcessor` - buffers spans per trace, decides with Collector ``tail_sampling`` policies
  (plus Sieve's ``error_boost``, ``rare``, ``dynamic``), forwards kept spans stamped with their sampling outcome;
* :class:`SpanMetricsProcessor` - RED metrics from every span before sampling;
* :func:`load_tail_sampling`, :func:`load_tail_sampling_file`, :func:`default_config`;
* :class:`ErrorSignal` - the error-rate boost signal, shared with the log sampler.

Layout: ``buffer`` (pure core), ``engine`` + ``combine`` + ``policies/`` (decisions), ``counting`` (adjusted
counts, ``ot=th``), ``cache``, ``stress``, ``boost``, ``dynamic``, ``config`` + ``policy_config``, ``metrics``,
``processor`` (thread shell), ``span_metrics``, ``testing`` (fakes shipped for tests).
"""

from __future__ import annotations

from pipeline.sampling.boost import ErrorSignal, ErrorSignalSettings
from pipeline.sampling.config import (
    StressRelief,
    TailSamplingConfig,
    load_tail_sampling,
    load_tail_sampling_file,
    parse_duration,
)
from pipeline.sampling.defaults import default_config
from pipeline.sampling.processor import TailSamplingProcessor
from pipeline.sampling.span_metrics import SpanMetricsProcessor

__all__ = [
    "ErrorSignal",
    "ErrorSignalSettings",
    "SpanMetricsProcessor",
    "StressRelief",
    "TailSamplingConfig",
    "TailSamplingProcessor",
    "default_config",
    "load_tail_sampling",
    "load_tail_sampling_file",
    "parse_duration",
]
