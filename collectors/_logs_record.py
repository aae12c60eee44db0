"""How a decision travels from a call site into loguru's record, and how a held record is replayed.

loguru builds its record inside ``logger.log`` and then runs the patcher in the same thread, so the call site
passes its decision through a thread-local *slot*: set just before the loguru call, read and cleared by the
patcher, cleared again in ``finally`` (a record loguru skips, e.g. below every handler's level, leaves nothing
behind). A held record is an :class:`Entry`'s fields (:data:`EntryFields`); replaying it sets the slot with an
*override* that puts back the original time, trace and span ids and call site, since it is emitted later on another
thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

Stamp = tuple[float, str]  # (probability, reason)
Location = tuple[str | None, str, int, str]  # module or logger name, function, line, file path
# When, which trace and span, where: replaces what loguru captured at emission.
Override = tuple[float, int, int, Location]  # wall time (s), trace id, span id, location
# (category, stamp or None to let the sampler count it as uncategorised, override or None)
Slot = tuple[str, Stamp | None, Override | None]


class Entry(NamedTuple):
    """A record waiting for its trace's decision: what the call site passed, and when, where and in which span.

    Flat (the location's four fields inline), so a held record allocates one tuple; formatting is deferred until
    the record is kept. The hot path holds the fields only (:data:`EntryFields`); a replay names them.
    """

    level_no: int
    level: str | int  # loguru's level name, or the number
    message: str  # the template, formatted only on replay
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    wall_s: float  # time.time() at the call
    trace_id: int
    span_id: int
    name: str | None  # the location: module or logger name, function, line, file path
    function: str
    line: int
    path: str
    category: str


# A held record is an Entry's fields in a plain tuple, named (``Entry._make``) only when its trace is kept and it
# is replayed: an instance of a tuple subclass would cost every held record 180-280 ns more on the application's
# thread (no free list, a GC-tracked subtype; bench_logs' sieve_dropped_in_trace went from 1.45 us to 1.64-1.74 us).
# The element types are Entry's, in its order (tests/logs/test_logs_bridge.py checks).
EntryFields = tuple[
    int, str | int, str, tuple[Any, ...], dict[str, Any], float, int, int, str | None, str, int, str, str
]


class RecordGate(Protocol):
    """One category's decision, asked before loguru builds anything."""

    def decide(self, level_no: int, trace_id: int) -> Stamp | None:
        """A stamp to keep now, None to drop, or ``pipeline.names.logs.HOLD`` to wait for the trace."""
        ...

    def hold(self, trace_id: int, level_no: int, entry: EntryFields) -> None:
        """Keep ``entry`` until ``trace_id`` is decided (after ``decide`` answered HOLD)."""
        ...


class RecordSampler(Protocol):
    """What the bridge needs from a log sampler (``pipeline.sampling.logs.LogSampler`` is one)."""

    def category(self, name: str) -> RecordGate:
        """The gate of a category (any name)."""
        ...

    def observe(self, level_no: int) -> Stamp:
        """Count a record logged without a category (always kept) and stamp it."""
        ...

    def attach(self, emit: Callable[[EntryFields, Stamp], None] | None) -> None:
        """Where held records of kept traces are sent back: ``emit(entry, stamp)`` (None detaches)."""
        ...


class _Slot(threading.local):
    value: Slot | None = None


slot = _Slot()


class RecordFile:
    """Stands in for loguru's ``record["file"]`` (``{file}`` formats as the name, ``{file.path}`` the path)."""

    __slots__ = ("name", "path")

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path

    def __repr__(self) -> str:
        return f"(name={self.name!r}, path={self.path!r})"

    def __format__(self, spec: str) -> str:
        return self.name.__format__(spec)

    def __str__(self) -> str:
        return self.name

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for enqueue=True sinks
        return (RecordFile, (self.name, self.path))


def apply_override(record: dict[str, Any], override: Override) -> tuple[int, int]:
    """Put the held record's time and call site back into ``record``; returns its (trace id, span id)."""
    wall, trace_id, span_id, (name, function, line, path) = override
    emitted = record["time"]
    # type(emitted): loguru's datetime subclass, whose format tokens ({time:HH:mm:ss}) sinks rely on.
    original = type(emitted).fromtimestamp(wall, tz=emitted.tzinfo)
    record["time"] = original
    record["elapsed"] = record["elapsed"] - (emitted - original)
    file_name = os.path.basename(path)
    record["name"] = name
    record["function"] = function
    record["line"] = line
    record["file"] = RecordFile(file_name, path)
    record["module"] = os.path.splitext(file_name)[0]
    return trace_id, span_id
