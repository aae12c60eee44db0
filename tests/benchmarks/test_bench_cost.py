"""The cost benchmark's pure parts: the /proc CPU readers and the per-turn, ratio and median arithmetic.

No timed assertions: CPU readings are compared with the kernel's other account of the same time (``os.times``)
or with a child's own report of CPU it burned.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.cost_proc import CLK_TCK, cpu_ticks, parse_stat, read_stat, thread_cpu_ticks, ticks_to_s, tree_cpu_ticks
from bench.cost_report import percentile, ratios, render, summarise, variant_row
from bench.cost_server import EncodingExporter


def _burn(cpu_s: float) -> None:
    end = os.times().user + cpu_s
    x = 0
    while os.times().user < end:
        x += 1


def _stat_line(pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int = 0, cstime: int = 0) -> str:
    # Fields 3..17 of /proc/<pid>/stat, then enough of the rest to look real.
    rest = ["S", ppid, pid, pid, 0, -1, 4194304, 100, 0, 0, 0, utime, stime, cutime, cstime, 20, 0, 1, 0]
    return f"{pid} ({comm}) " + " ".join(str(v) for v in rest) + "\n"


# -- /proc ---------------------------------------------------------------------------------------------------


def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    stat = parse_stat(_stat_line(4242, "py (worker) 2", ppid=7, utime=150, stime=25, cutime=3, cstime=4))
    assert (stat.pid, stat.ppid, stat.utime, stat.stime, stat.cutime, stat.cstime) == (4242, 7, 150, 25, 3, 4)
    assert stat.own_ticks == 175 and stat.reaped_ticks == 7


@pytest.mark.parametrize("text", ["", "garbage", "12 no-parens S 1 2 3"])
def test_parse_stat_rejects_what_is_not_a_stat_line(text: str) -> None:
    with pytest.raises(ValueError, match="not a /proc/<pid>/stat line"):
        parse_stat(text)


def test_own_cpu_matches_the_kernels_other_account() -> None:
    _burn(0.05)
    t = os.times()
    ticks = cpu_ticks(os.getpid())
    # os.times() and /proc/<pid>/stat count the same time (all threads) in the same ticks.
    assert abs(ticks_to_s(ticks) - (t.user + t.system)) <= 3 / CLK_TCK
    assert ticks > 0


def test_a_busy_thread_is_counted_apart_from_the_main_thread() -> None:
    import threading

    me = os.getpid()
    main_before = thread_cpu_ticks(me, me)
    burned, release = threading.Event(), threading.Event()
    tids: list[int] = []

    def work() -> None:
        tids.append(threading.get_native_id())
        _burn(0.2)
        burned.set()
        release.wait()  # alive while its /proc entry is read

    worker = threading.Thread(target=work)
    worker.start()
    try:
        burned.wait()
        worker_ticks = thread_cpu_ticks(me, tids[0])
        main_after = thread_cpu_ticks(me, me)
    finally:
        release.set()
        worker.join()
    assert worker_ticks >= 0.15 * CLK_TCK  # the worker's burn is its own...
    assert main_after - main_before < worker_ticks  # ...not the main thread's, which only waited
    assert cpu_ticks(me) >= main_after + worker_ticks  # the process counts both


def test_tree_cpu_follows_a_child_while_it_lives_and_after_it_is_reaped() -> None:
    me = os.getpid()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import os, sys\n"
                "end = os.times().user + 0.3\n"
                "while os.times().user < end: pass\n"
                "print('burned', flush=True)\n"
                "sys.stdin.read()\n"
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        assert child.stdout.readline().strip() == "burned"
        child_ticks = cpu_ticks(child.pid)
        own_before, tree_live = cpu_ticks(me), tree_cpu_ticks(me)
        assert child_ticks >= 0.25 * CLK_TCK
        assert tree_live >= own_before + child_ticks  # the live child is found as a descendant
    finally:
        child.stdin.close()
        child.wait()
    tree_reaped, own_after = tree_cpu_ticks(me), cpu_ticks(me)
    # Reaped, its time moved into our cutime/cstime: the tree lost nothing.
    assert read_stat(me).reaped_ticks >= child_ticks
    assert tree_reaped - own_after >= child_ticks
    assert tree_reaped >= tree_live


def test_tree_cpu_sums_descendants_only(tmp_path: Path) -> None:
    for line in (
        _stat_line(10, "postgres", ppid=1, utime=100, stime=10, cutime=50, cstime=5),
        _stat_line(11, "postgres: backend", ppid=10, utime=20, stime=2),
        _stat_line(12, "postgres: walwriter", ppid=10, utime=1, stime=1),
        _stat_line(13, "psql child", ppid=11, utime=4, stime=0, cutime=1),
        _stat_line(20, "unrelated", ppid=1, utime=999, stime=999),
    ):
        pid = line.split()[0]
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "stat").write_text(line)
    (tmp_path / "self").mkdir()  # not a pid: skipped
    (tmp_path / "99").mkdir()  # a process that ended while /proc was read: skipped
    assert tree_cpu_ticks(10, proc=tmp_path) == (110 + 55) + 22 + 2 + (4 + 1)
    assert tree_cpu_ticks(11, proc=tmp_path) == 22 + 5
    with pytest.raises(ProcessLookupError):
        tree_cpu_ticks(77, proc=tmp_path)


# -- arithmetic ----------------------------------------------------------------------------------------------


def _window(turns: int, server_cpu_s: float, window_s: float = 10.0, **extra: Any) -> dict[str, Any]:
    return {
        "turns": turns,
        "window_s": window_s,
        "server_cpu_s": server_cpu_s,
        "loop_cpu_s": extra.pop("loop_cpu_s", server_cpu_s / 2),
        "pg_cpu_s": extra.pop("pg_cpu_s", 1.0),
        "load_cpu_s": 2.0,
        "errors": 0,
        "idle_s": 2.0,
        "idle_cpu_s": 0.03,
        "latencies_ms": extra.pop("latencies_ms", [1.0] * 98 + [5.0, 9.0]),
        **extra,
    }


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) == 0.0


def test_variant_row_is_cpu_per_turn_in_microseconds() -> None:
    row = variant_row(_window(2000, 3.0, pg_cpu_s=0.5))
    assert row["cpu_us_per_turn"] == 1500.0
    assert row["loop_cpu_us_per_turn"] == 750.0
    assert row["pg_cpu_us_per_turn"] == 250.0
    assert row["load_cpu_us_per_turn"] == 1000.0
    assert row["turns_per_s"] == 200.0
    assert row["server_cores"] == 0.3
    assert row["idle_cpu_ms_per_s"] == 15.0
    assert (row["p50_ms"], row["p99_ms"]) == (1.0, 9.0)
    assert variant_row(_window(10, 1.0, pg_cpu_s=None))["pg_cpu_us_per_turn"] is None
    assert math.isnan(variant_row(_window(0, 1.0))["cpu_us_per_turn"])


def _round(a_us: float, b_us: float, c_us: float) -> dict[str, dict[str, Any]]:
    return {
        "none": variant_row(_window(1000, a_us / 1000, latencies_ms=[1.0] * 100)),
        "otel": variant_row(_window(1000, b_us / 1000, latencies_ms=[2.0] * 100)),
        "sieve": variant_row(_window(1000, c_us / 1000, latencies_ms=[3.0] * 100)),
    }


def test_ratios_of_a_round() -> None:
    r = ratios(_round(1000, 2000, 1500))
    assert r["cpu_c_over_b"] == 0.75
    assert r["cpu_c_over_a"] == 1.5
    assert r["cpu_b_over_a"] == 2.0
    assert r["p99_c_over_a"] == 3.0
    assert r["tps_c_over_a"] == 1.0
    missing = ratios({"none": _round(1, 2, 3)["none"]})
    assert missing["cpu_c_over_a"] is None


def test_summary_takes_the_median_of_per_round_ratios() -> None:
    # Per-round c/b: 0.75, 2.0, 1.0 -> median 1.0; not the ratio of the median CPUs (1800 / 2000 = 0.9).
    rounds = [_round(1000, 2000, 1500), _round(1200, 1000, 2000), _round(1100, 1800, 1800)]
    summary = summarise(rounds)
    assert [r["round"] for r in summary["rounds"]] == [1, 2, 3]
    assert [r["ratios"]["cpu_c_over_b"] for r in summary["rounds"]] == [0.75, 2.0, 1.0]
    assert summary["median"]["ratios"]["cpu_c_over_b"] == 1.0
    assert summary["median"]["none"]["cpu_us_per_turn"] == 1100.0
    assert summary["median"]["sieve"]["cpu_us_per_turn"] == 1800.0
    table = "\n".join(render(summary))
    for text in ("no telemetry", "plain OpenTelemetry", "Sieve", "round 3", "median", "1,800"):
        assert text in table


def test_a_summary_with_a_variant_missing_still_renders() -> None:
    rounds = [{k: v for k, v in _round(1000, 2000, 1500).items() if k != "otel"}]
    summary = summarise(rounds)
    assert "otel" not in summary["median"]
    assert summary["median"]["ratios"]["cpu_c_over_b"] is None
    assert summary["median"]["ratios"]["cpu_c_over_a"] == 1.5
    assert "plain OpenTelemetry" not in "\n".join(render(summary))


# -- the exporter both telemetry variants pay for ------------------------------------------------------------


def test_encoding_exporter_counts_what_it_encoded() -> None:
    exporter = EncodingExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for i in range(3):
        with tracer.start_as_current_span("call_tool", attributes={"i": i}):
            pass
    provider.shutdown()
    stats = exporter.stats()
    assert stats["spans_exported"] == 3 and stats["export_batches"] == 3
    assert stats["bytes_exported"] > 3 * len("call_tool")
