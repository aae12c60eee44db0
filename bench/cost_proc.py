"""CPU time of other processes, read from ``/proc``: the cost benchmark's measuring stick (Linux only).

``/proc/<pid>/stat`` holds a process's user and system time over all its threads, in clock ticks
(``os.sysconf("SC_CLK_TCK")``, 100 a second here). Reading it from the load generator's process costs the
measured server nothing, and a difference of two readings is exactly the CPU the server spent in between,
whichever thread spent it (event loop, batch span processor, tail sampler, sink).

A process tree (Postgres: the postmaster and its backends) is summed as: every live member's own time plus its
``cutime + cstime`` (the time of its children that exited and were reaped, which the kernel adds to the parent).
A backend that ends between two readings thus moves from its own entry to the postmaster's without loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` this benchmark needs; times in clock ticks."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int

    @property
    def own_ticks(self) -> int:
        return self.utime + self.stime

    @property
    def reaped_ticks(self) -> int:
        """What its children that ended (and were waited for) spent, their own reaped children included."""
        return self.cutime + self.cstime


def parse_stat(text: str) -> ProcStat:
    """Parse one ``/proc/<pid>/stat`` line. The command name (field 2) may hold spaces and parentheses, so the
    fields are counted from the last ``)``."""
    pid_part, _, rest = text.partition(" (")
    close = rest.rfind(")")
    if not pid_part.strip().isdigit() or close < 0:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    fields = rest[close + 2 :].split()
    # fields[0] is field 3 (state); utime..cstime are fields 14..17, ppid is field 4.
    return ProcStat(
        pid=int(pid_part),
        ppid=int(fields[1]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        cutime=int(fields[13]),
        cstime=int(fields[14]),
    )


def read_stat(pid: int, proc: Path = PROC) -> ProcStat:
    return parse_stat((proc / str(pid) / "stat").read_text())


def cpu_ticks(pid: int) -> int:
    """User + system time of ``pid``, all its threads, in clock ticks."""
    return read_stat(pid).own_ticks


def thread_cpu_ticks(pid: int, tid: int, proc: Path = PROC) -> int:
    """User + system time of one thread (``tid == pid``: the main thread, the demo's event loop)."""
    return read_stat(tid, proc / str(pid) / "task").own_ticks


def tree_cpu_ticks(root: int, proc: Path = PROC) -> int:
    """User + system time of ``root`` and every live descendant, plus what their reaped children spent."""
    stats: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stats[int(entry.name)] = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError):  # the process ended while we looked
            continue
    if root not in stats:
        raise ProcessLookupError(root)
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    total = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        total += stats[pid].own_ticks + stats[pid].reaped_ticks
        todo.extend(children.get(pid, ()))
    return total


def ticks_to_s(ticks: int) -> float:
    return ticks / CLK_TCK
