"""Standard-library ``logging`` records routed into the same path as loguru's (libraries log there).

The handler sits on the root logger. Each record goes to loguru with its own time, logger name and call site
(not the handler's), the current trace and span ids, and the same patcher: redaction, stamps, counts, then
every loguru sink including OpenTelemetry. A logger can be given a category (``{"httpx": "HTTP"}``, by name
prefix) to sample it like a ``CategoryLogger``; the stdlib record is already built by then, but loguru's is
not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry.trace import get_current_span

from collectors._logs_record import EntryFields, Location, RecordSampler, slot
from pipeline.names.logs import HOLD, NO_CATEGORY

if TYPE_CHECKING:
    from loguru import Logger


class StdlibHandler(logging.Handler):
    """A ``logging.Handler`` that re-emits records through loguru."""

    def __init__(
        self,
        loguru_logger: Logger,
        sampler: RecordSampler | None,
        categories: Mapping[str, str],
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self._loguru = loguru_logger
        self._opt = loguru_logger.opt(depth=0)
        self._sampler = sampler
        self._prefixes = sorted(categories.items(), key=lambda kv: len(kv[0]), reverse=True)
        self._category_of: dict[str, str | None] = {}
        self._levels: dict[str, str | int] = {}

    def category_of(self, logger_name: str) -> str | None:
        """The category configured for ``logger_name`` (longest matching prefix), or None."""
        try:
            return self._category_of[logger_name]
        except KeyError:
            pass
        found = None
        for prefix, category in self._prefixes:
            if logger_name == prefix or logger_name.startswith(prefix + "."):
                found = category
                break
        if len(self._category_of) < 4096:  # logger names are bounded in practice; this keeps it so
            self._category_of[logger_name] = found
        return found

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record)
        except Exception:
            self.handleError(record)

    def _emit(self, record: logging.LogRecord) -> None:
        context = get_current_span().get_span_context()
        trace_id = context.trace_id if context.trace_flags & 1 else 0
        location: Location = (record.name, record.funcName, record.lineno, record.pathname)
        level = self._level(record)
        category = self.category_of(record.name) if self._sampler is not None else None
        stamp = None
        if category is not None and self._sampler is not None:
            gate = self._sampler.category(category)
            stamp = gate.decide(record.levelno, trace_id)
            if stamp is None:
                return
            if stamp is HOLD:
                entry: EntryFields = (  # Entry's fields, in its order
                    record.levelno, level, record.getMessage(), (), {}, record.created, trace_id, context.span_id,
                    *location, category,
                )  # fmt: skip
                gate.hold(trace_id, record.levelno, entry)
                return
        slot.value = (category or NO_CATEGORY, stamp, (record.created, context.trace_id, context.span_id, location))
        try:
            opt = self._loguru.opt(exception=record.exc_info) if record.exc_info else self._opt
            # No args: the stdlib message is final, and loguru must not str.format() it again.
            opt.log(level, record.getMessage())
        finally:
            slot.value = None

    def _level(self, record: logging.LogRecord) -> str | int:
        """loguru's level of the same name (DEBUG, INFO, WARNING, ERROR, CRITICAL), else the number."""
        level = self._levels.get(record.levelname)
        if level is None:
            try:
                level = self._loguru.level(record.levelname).name
            except ValueError:
                level = record.levelno
            self._levels[record.levelname] = level
        return level
