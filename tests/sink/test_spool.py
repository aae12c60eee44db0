"""The on-disk spool: order, budget, segments, a torn last line, and a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.export.postgres.spool import Spool


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"i": i} for i in range(start, start + n)]


def drain(spool: Spool) -> list[tuple[str, list[dict]]]:
    out = []
    while (batch := spool.peek()) is not None:
        out.append((batch.signal, batch.rows))
        spool.ack(batch)
    return out


def test_batches_come_back_in_order_across_segments_and_files_are_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=100)
    for k in range(6):
        assert spool.append("events", rows(3, 3 * k))
    assert spool.segments > 1 and spool.size_bytes > 0
    batches = drain(spool)
    assert [r["i"] for _, b in batches for r in b] == list(range(18))
    assert spool.empty() and spool.size_bytes == 0
    assert not list(tmp_path.glob("seg-*.jsonl"))


def test_appends_while_replaying_go_after_what_is_being_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append("points", rows(1, 0))
    first = spool.peek()
    assert first is not None
    spool.append("points", rows(1, 1))  # lands in a new segment: the one being read is sealed
    spool.ack(first)
    assert [b[0]["i"] for _, b in drain(spool)] == [1]


def test_the_budget_refuses_a_batch_that_would_exceed_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path, budget_bytes=60, segment_bytes=1000)
    assert spool.append("events", rows(1))
    assert not spool.append("events", rows(5))
    assert spool.size_bytes <= 60


def test_a_new_process_finds_what_the_last_one_left(tmp_path: Path) -> None:
    first = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=1 << 20)
    first.append("spans", rows(2))
    first.append("events", rows(1, 7))
    # no close(): as if the process had been killed
    second = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=1 << 20)
    assert second.size_bytes == first.size_bytes
    second.append("points", rows(1, 9))
    assert [(s, [r["i"] for r in b]) for s, b in drain(second)] == [("spans", [0, 1]), ("events", [7]), ("points", [9])]


def test_a_torn_last_line_is_counted_and_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append("events", rows(1))
    spool.close()
    (segment,) = tmp_path.glob("seg-*.jsonl")
    with segment.open("ab") as f:
        f.write(b'{"signal": "events", "rows": [{"i": 1')
    again = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=1 << 20)
    assert [[r["i"] for r in b] for _, b in drain(again)] == [[0]]
    assert again.corrupt_batches == 1


def test_acknowledging_out_of_order_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append("events", rows(1))
    spool.append("events", rows(1))
    first = spool.peek()
    assert first is not None
    spool.ack(first)
    with pytest.raises(ValueError, match="acknowledged in order"):
        spool.ack(first)


def test_fsync_mode_writes_the_same_lines(tmp_path: Path) -> None:
    spool = Spool(tmp_path, budget_bytes=1 << 20, segment_bytes=1 << 20, fsync=True)
    spool.append("events", rows(2))
    assert [len(b) for _, b in drain(spool)] == [2]
