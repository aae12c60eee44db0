"""Freeze a test-owned Postgres the way a hung database looks in production: every one of its processes stopped
(SIGSTOP), sockets open, nothing answering, not even a refusal.

The postmaster's pid is the first line of ``postmaster.pid`` in the data directory; its children (backends,
checkpointer, walwriter, ...) are found through ``/proc`` (no procps needed). The postmaster is stopped first,
so it cannot fork a child that the list would miss.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class Server(Protocol):
    """A test-owned Postgres (``freezable_pg``, ``restartable_pg``): its data directory is all a freeze needs."""

    @property
    def data_dir(self) -> Path: ...


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class Frozen:
    """The pids a freeze stopped; ``thaw()`` continues them (idempotent)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.thawed = False

    def thaw(self) -> None:
        if self.thawed:
            return
        self.thawed = True
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def freeze(pg: Server) -> Frozen:
    """SIGSTOP the postmaster, then every child of it."""
    master = postmaster_pid(pg.data_dir)
    os.kill(master, signal.SIGSTOP)
    pids = [master]
    frozen = Frozen(pids)
    try:
        for child in children(master):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGSTOP)
                pids.append(child)
    except BaseException:
        frozen.thaw()
        raise
    return frozen


@contextlib.contextmanager
def frozen(pg: Server) -> Iterator[Frozen]:
    """Frozen for the block (or until ``thaw()``); always thawed on the way out, so the fixture can stop it."""
    state = freeze(pg)
    try:
        yield state
    finally:
        state.thaw()
