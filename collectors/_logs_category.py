"""``CategoryLogger``: a loguru front whose calls are decided before loguru builds a record.

A dropped call costs a level comparison, a trace-context read and the sampler's draw: no frame walk, no
datetime, no dict of record fields, no formatting (loguru's own ``filter`` runs only after all of that).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import get_current_span

from collectors._logs_record import EntryFields, RecordGate, slot
from pipeline.names.logs import HOLD

if TYPE_CHECKING:
    from loguru import Logger

# loguru frames between its _log and the application: Logger.log, then _handle and the level method here.
_DEPTH = 2


class CategoryLogger:
    """``logs.category("SAFE_SEND").debug("sent op={}", op)``: loguru's call style, sampled by category.

    Messages use loguru's ``str.format`` style. WARNING and above are always kept; lower levels are kept at the
    category's rate, or with their trace when the tail sampler keeps it. Records below ``min_level_no`` are
    ignored outright. A record that waits for its trace is formatted only if kept (its args are held as
    they are: do not mutate them afterwards).
    """

    __slots__ = ("_gate", "_levels", "_loguru", "_min", "_opt", "_opt_exc", "category")

    def __init__(self, category: str, gate: RecordGate, loguru_logger: Logger, min_level_no: int) -> None:
        self.category = category
        self._gate = gate
        self._min = min_level_no
        self._loguru = loguru_logger
        self._opt = loguru_logger.opt(depth=_DEPTH)
        self._opt_exc = loguru_logger.opt(depth=_DEPTH, exception=True)
        self._levels: dict[str, int] = {}

    def enabled(self, level_no: int) -> bool:
        """Whether ``level_no`` passes the level check (use it to skip building costly arguments)."""
        return level_no >= self._min

    def trace(self, message: str, /, *args: Any, **kwargs: Any) -> None:
        if self._min <= 5:
            self._handle(5, "TRACE", message, args, kwargs)

    def debug(self, message: str, /, *args: Any, **kwargs: Any) -> None:
        if self._min <= 10:
            self._handle(10, "DEBUG", message, args, kwargs)

    def info(self, message: str, /, *args: Any, **kwargs: Any) -> None:
        if self._min <= 20:
            self._handle(20, "INFO", message, args, kwargs)

    def success(self, message: str, /, *args: Any, **kwargs: Any) -> None:
        if self._min <= 25:
            self._handle(25, "SUCCESS", message, args, kwargs)

    def warning(self, message: str, /, *args: Any, **kwargs: Any) -> None:
        if self._min <= 30:
            self._handle(30, "WARNING", message, args, kwargs)

    def error(self, message: str, /, *args: Any, **kwargs: Any) -> None:
        if self._min <= 40:
            self._handle(40, "ERROR", message, args, kwargs)

    def exception(self, message: str, /, *args: Any, **kwargs: Any) -> None:
        """ERROR with the exception being handled attached."""
        if self._min <= 40:
            self._handle(40, "ERROR", message, args, kwargs, exception=True)

    def critical(self, message: str, /, *args: Any, **kwargs: Any) -> None:
        if self._min <= 50:
            self._handle(50, "CRITICAL", message, args, kwargs)

    def log(self, level: str | int, message: str, /, *args: Any, **kwargs: Any) -> None:
        """Log at a loguru level given by name (custom levels included) or number."""
        level_no = level if isinstance(level, int) else (self._levels.get(level) or self._level_no(level))
        if level_no >= self._min:
            self._handle(level_no, level, message, args, kwargs)

    def _level_no(self, name: str) -> int:
        level_no = self._levels[name] = self._loguru.level(name).no
        return level_no

    def _handle(
        self,
        level_no: int,
        level: str | int,
        message: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exception: bool = False,
    ) -> None:
        context = get_current_span().get_span_context()
        # Only a sampled span reaches the tail sampler; any other trace will never be decided.
        trace_id = context.trace_id if context.trace_flags & 1 else 0
        stamp = self._gate.decide(level_no, trace_id)
        if stamp is None:
            return
        if stamp is HOLD:
            frame = sys._getframe(2)  # the application's frame: _handle <- level method <- caller
            code = frame.f_code
            entry: EntryFields = (  # Entry's fields, in its order
                level_no, level, message, args, kwargs, time.time(), trace_id, context.span_id,
                frame.f_globals.get("__name__"), code.co_name, frame.f_lineno, code.co_filename, self.category,
            )  # fmt: skip
            self._gate.hold(trace_id, level_no, entry)
            return
        slot.value = (self.category, stamp, None)
        try:
            (self._opt_exc if exception else self._opt).log(level, message, *args, **kwargs)
        finally:
            slot.value = None
