"""The loguru bridge: trace context on every record, category sampling decided before the record is built,
redaction, and records handed to the OpenTelemetry Logs API and to the sinks the application already has.

Wiring (the composition root; the sampler is ``pipeline.sampling.logs.LogSampler``, or None to keep all)::

    bridge = LogBridge(logger_provider, sampler, LogBridgeSettings()).install()
    send_log = bridge.category("SAFE_SEND")
    send_log.debug("sent op={} bytes={}", op, size)      # decided before loguru builds anything
    logger.info("plain loguru call")                      # kept, stamped, correlated, redacted
    logging.getLogger("httpx").info("library call")       # the same path
    ...
    bridge.uninstall()

What ``install()`` changes in process-wide state, and ``uninstall()`` puts back:

* loguru's global patcher (``logger.configure(patcher=...)``), so plain ``from loguru import logger`` calls
  carry trace ids and are redacted too (with ``global_patcher=False`` only ``bridge.logger`` and category
  loggers are patched); it replaces any patcher set before, and ``uninstall()`` leaves a no-op one;
* one loguru sink to the Logs API (when a ``LoggerProvider`` is given);
* one handler on the stdlib root logger, and the root logger's level (when ``intercept_stdlib``).

Every record gets, in ``record["extra"]``: ``trace_id`` / ``span_id`` (hex, empty outside a trace; usable in a
console format as ``{extra[trace_id]}``), ``sieve.log.category``, ``sieve.sampling.probability`` and
``sieve.sampling.reason``. Known limits: a replayed record (kept with its trace, emitted later on the tail
sampler's thread) shows that thread in ``record["thread"]``; exception text in console sinks is loguru's own
formatting and is not redacted (the OpenTelemetry sink redacts ``exception.message`` and the stack trace).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger as _global_logger
from opentelemetry._logs import LoggerProvider
from opentelemetry.trace import get_current_span

from collectors._logs_category import CategoryLogger
from collectors._logs_otel import OtelSink, severity
from collectors._logs_record import Entry, EntryFields, RecordGate, RecordSampler, Stamp, apply_override, slot
from collectors._logs_redact import DEFAULT_FIELDS, DEFAULT_MASK, DEFAULT_PATTERNS, Redactor
from collectors._logs_stdlib import StdlibHandler
from pipeline.names import logs as n

if TYPE_CHECKING:
    from loguru import Logger, Record

__all__ = [
    "CategoryLogger",
    "LogBridge",
    "LogBridgeSettings",
    "OtelSink",
    "RecordGate",
    "RecordSampler",
    "Redactor",
    "Stamp",
    "disabled_category",
    "severity",
]

_OWN_KEYS = (n.TRACE_ID_EXTRA, n.SPAN_ID_EXTRA, n.CATEGORY, n.PROBABILITY, n.REASON)


@dataclass(frozen=True)
class LogBridgeSettings:
    """YAML ``logs.bridge``: ``level``, ``otel_level``, ``intercept_stdlib``, ``stdlib_level``,
    ``stdlib_categories``, ``redact_fields``, ``redact_patterns``, ``redact_mask``, ``global_patcher``."""

    level: str = "DEBUG"  # category loggers ignore lower levels outright (before the sampler counts them)
    otel_level: str = "DEBUG"  # level of the sink to the Logs API
    intercept_stdlib: bool = True
    stdlib_level: str = "INFO"  # the root logger's level while intercepted (library DEBUG noise stays out)
    stdlib_categories: Mapping[str, str] = field(default_factory=dict)  # logger name prefix -> category
    redact_fields: tuple[str, ...] = DEFAULT_FIELDS
    redact_patterns: tuple[str, ...] = DEFAULT_PATTERNS
    redact_mask: str = DEFAULT_MASK
    global_patcher: bool = True

    def __post_init__(self) -> None:
        for name in ("level", "otel_level", "stdlib_level"):
            value = getattr(self, name)
            try:
                _global_logger.level(value)
            except (ValueError, TypeError):
                raise ValueError(
                    f"logs.bridge.{name}: {value!r} is not accepted; expected a loguru level name "
                    "(TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, CRITICAL)"
                ) from None


class _KeepAll:
    """The gate and sampler used without a sampler: everything is kept and stamped ``unsampled``."""

    def category(self, name: str) -> _KeepAll:
        return self

    def decide(self, level_no: int, trace_id: int) -> Stamp:
        return self.observe(level_no)

    def hold(self, trace_id: int, level_no: int, entry: Any) -> None:  # never asked to hold
        pass

    def observe(self, level_no: int) -> Stamp:
        return (1.0, n.REASON_SEVERITY if level_no >= 30 else n.REASON_UNSAMPLED)

    def attach(self, emit: Any) -> None:
        pass


def disabled_category(name: str) -> CategoryLogger:
    """A category logger that logs nothing (for an uninstrumented run): every call stops at the level check."""
    return CategoryLogger(name, _KeepAll(), _global_logger, min_level_no=1_000)


def _no_patch(record: Record) -> None:
    """What ``uninstall()`` leaves as loguru's global patcher (loguru cannot unset one)."""


class LogBridge:
    """The loguru integration. ``logger_provider`` None: no OpenTelemetry sink (console and file sinks only)."""

    def __init__(
        self,
        logger_provider: LoggerProvider | None = None,
        sampler: RecordSampler | None = None,
        settings: LogBridgeSettings | None = None,
    ) -> None:
        self.settings = s = settings or LogBridgeSettings()
        self._provider = logger_provider
        self._sampler: RecordSampler = sampler if sampler is not None else _KeepAll()
        self._redactor = Redactor(s.redact_fields, s.redact_patterns, s.redact_mask, skip_keys=_OWN_KEYS)
        # Category loggers and replays use this logger; patched directly when the global patcher is off.
        self.logger: Logger = _global_logger if s.global_patcher else _global_logger.patch(self.patch_record)
        self._replay = self.logger.opt(depth=0)
        self._min_level_no = _global_logger.level(s.level).no
        self._sink_id: int | None = None
        self._stdlib: StdlibHandler | None = None
        self._stdlib_level_before: int | None = None
        self._installed = False

    # -- lifecycle ------------------------------------------------------------------------------------------

    def install(self) -> LogBridge:
        """Install the patcher, the OpenTelemetry sink and the stdlib handler (idempotent)."""
        if self._installed:
            return self
        s = self.settings
        self._sampler.attach(self._emit_held)
        if s.global_patcher:
            _global_logger.configure(patcher=self.patch_record)
        if self._provider is not None:
            sink = OtelSink(self._provider, self._redactor)
            # diagnose/backtrace off: the sink reads the record, not loguru's formatted exception text.
            self._sink_id = _global_logger.add(
                sink, level=s.otel_level, format="{message}", backtrace=False, diagnose=False, catch=True
            )
        if s.intercept_stdlib:
            sampler = None if isinstance(self._sampler, _KeepAll) else self._sampler
            self._stdlib = StdlibHandler(self.logger, sampler, s.stdlib_categories)
            root = logging.getLogger()
            self._stdlib_level_before = root.level
            root.addHandler(self._stdlib)
            root.setLevel(_global_logger.level(s.stdlib_level).no)
        self._installed = True
        return self

    def uninstall(self) -> None:
        """Undo :meth:`install`; held records of traces decided later are no longer emitted."""
        if not self._installed:
            return
        self._installed = False
        self._sampler.attach(None)
        if self._stdlib is not None:
            root = logging.getLogger()
            root.removeHandler(self._stdlib)
            if self._stdlib_level_before is not None:
                root.setLevel(self._stdlib_level_before)
            self._stdlib = None
        if self._sink_id is not None:
            _global_logger.remove(self._sink_id)
            self._sink_id = None
        if self.settings.global_patcher:
            _global_logger.configure(patcher=_no_patch)

    def __enter__(self) -> LogBridge:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # -- use ------------------------------------------------------------------------------------------------

    def has_receivers(self) -> bool:
        """True while a replayed record would reach something: the OpenTelemetry sink, or any other loguru sink."""
        if self._sink_id is not None:
            return True
        try:
            return bool(_global_logger._core.handlers)  # type: ignore[attr-defined]  # loguru keeps no public count
        except AttributeError:  # another loguru layout: replay, to lose nothing
            return True

    def category(self, name: str) -> CategoryLogger:
        """A logger for category ``name`` (any name; unconfigured ones use the sampler's default rate)."""
        return CategoryLogger(name, self._sampler.category(name), self.logger, self._min_level_no)

    @property
    def redactor(self) -> Redactor:
        return self._redactor

    def patch_record(self, record: Record) -> None:
        """loguru patcher: trace ids, sampling stamp, replayed time and call site, redaction. Never raises."""
        try:
            self._patch(record)
        except Exception:  # a log call must never fail because of the bridge
            record["extra"][n.REASON] = record["extra"].get(n.REASON, n.REASON_UNSAMPLED)

    def _patch(self, record: Record) -> None:
        value = slot.value
        slot.value = None  # consumed: a record logged from inside a sink must not inherit it
        if value is None:
            category, stamp, override = n.NO_CATEGORY, None, None
        else:
            category, stamp, override = value
        if override is None:
            context = get_current_span().get_span_context()
            trace_id, span_id = context.trace_id, context.span_id
        else:
            # loguru's Record is a TypedDict whose "file" is loguru's own class: the override writes a RecordFile.
            trace_id, span_id = apply_override(record, override)  # type: ignore[arg-type]
        if stamp is None:
            stamp = self._sampler.observe(record["level"].no)
        extra = record["extra"]
        self._redactor.extra(extra)  # noqa: S610 - the redactor's method, not Django's QuerySet.extra
        extra[n.TRACE_ID_EXTRA] = f"{trace_id:032x}" if trace_id else ""
        extra[n.SPAN_ID_EXTRA] = f"{span_id:016x}" if span_id else ""
        extra[n.CATEGORY] = category
        extra[n.PROBABILITY] = stamp[0]
        extra[n.REASON] = stamp[1]
        record["message"] = self._redactor.text(record["message"])

    def _emit_held(self, fields: EntryFields, stamp: Stamp) -> None:
        """Replay a held record whose trace was kept (called on the tail sampler's thread)."""
        if not self._installed:
            return
        entry = Entry._make(fields)
        location = (entry.name, entry.function, entry.line, entry.path)
        slot.value = (entry.category, stamp, (entry.wall_s, entry.trace_id, entry.span_id, location))
        try:
            self._replay.log(entry.level, entry.message, *entry.args, **entry.kwargs)
        finally:
            slot.value = None
