"""In-process tail sampling and pre-sampling span metrics.

Public entry points (wired by ``pipeline/bootstrap.py``):

* :func:`build_span_pipeline` - the one span processor the composition root adds: RED span metrics from every
  span (counted off the event loop, published at collection time) and, unless sampling is off, the tail sampler;
* :class:`TailSamplingProcessor` - what that returns: buffers spans per trace, decides with Collector
  ``tail_sampling`` policies (plus Sieve's ``error_boost``, ``rare``, ``dynamic``, ``n_plus_one``) and the
  kept-volume budget, forwards kept spans stamped with their exact inclusion probability (and the N+1 marks);
* :class:`SpanMetricsProcessor` - RED metrics as a processor of their own;
* :func:`load_tail_sampling`, :func:`load_tail_sampling_file`, :func:`default_config`;
* :class:`ErrorSignal` - the error-rate boost signal, shared with the log sampler.

Layout: ``buffer`` (pure core), ``engine`` + ``combine`` + ``region`` + ``policies/`` (decisions and their exact
probabilities), ``nplusone`` (the N+1 detector), ``budget`` + ``rates``, ``counting`` (adjusted counts, ``ot=th``,
marks), ``cache``, ``stress``, ``boost``, ``dynamic``, ``config`` + ``policy_config``, ``metrics``, ``processor``
(thread shell), ``span_metrics``, ``testing`` + ``simulation`` (fakes and a synthetic workload shipped for tests).
"""

from __future__ import annotations

from pipeline.durations import parse_duration
from pipeline.sampling.boost import ErrorSignal, ErrorSignalSettings
from pipeline.sampling.config import (
    StressRelief,
    TailSamplingConfig,
    load_tail_sampling,
    load_tail_sampling_file,
)
from pipeline.sampling.defaults import default_config
from pipeline.sampling.processor import SpanObserver, TailSamplingProcessor, build_span_pipeline
from pipeline.sampling.span_metrics import SpanMetricsProcessor

__all__ = [
    "ErrorSignal",
    "ErrorSignalSettings",
    "SpanMetricsProcessor",
    "SpanObserver",
    "StressRelief",
    "TailSamplingConfig",
    "TailSamplingProcessor",
    "build_span_pipeline",
    "default_config",
    "load_tail_sampling",
    "load_tail_sampling_file",
    "parse_duration",
]
