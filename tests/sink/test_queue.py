from __future__ import annotations

import threading
import time

from pipeline.export.postgres.queue import RowQueue


def test_offer_accepts_what_fits_and_never_blocks() -> None:
    queue = RowQueue(capacity_rows=5, batch_size=3, signals=("a", "b"))
    assert queue.offer("a", [{"i": i} for i in range(4)]) == 4
    assert queue.offer("b", [{"i": i} for i in range(4)]) == 1
    assert queue.offer("b", [{}]) == 0
    assert queue.size == 5


def test_take_returns_at_most_a_batch_per_signal_in_order() -> None:
    queue = RowQueue(capacity_rows=100, batch_size=3, signals=("a", "b"))
    queue.offer("a", [{"i": i} for i in range(5)])
    queue.offer("b", [{"i": 9}])
    assert queue.take() == [("a", [{"i": 0}, {"i": 1}, {"i": 2}]), ("b", [{"i": 9}])]
    assert queue.take() == [("a", [{"i": 3}, {"i": 4}])]
    assert queue.take() == [] and queue.size == 0


def test_a_full_batch_wakes_the_waiting_worker() -> None:
    queue = RowQueue(capacity_rows=100, batch_size=2, signals=("a",))
    woke = threading.Event()

    def worker() -> None:
        queue.wait(5.0)
        woke.set()

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.05)
    queue.offer("a", [{}, {}])
    assert woke.wait(2.0)
    thread.join()


def test_wake_interrupts_a_wait() -> None:
    queue = RowQueue(capacity_rows=10, batch_size=5, signals=("a",))
    queue.wake()
    started = time.monotonic()
    queue.wait(5.0)
    assert time.monotonic() - started < 1.0
