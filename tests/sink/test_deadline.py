"""Client-side deadlines against a frozen Postgres (every process SIGSTOPped): calls fail instead of hanging, the
connection is replaced, and the store works again once the server runs.

No timings are asserted: the guard against a hang is pytest's timeout and the explicit ones below; what is
asserted is which error arrives and what state follows.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from pipeline.export.postgres.deadline import DeadlineExceeded, Watchdog
from pipeline.export.postgres.encode import event_row
from pipeline.export.postgres.store import Failure, SinkDatabase, classify, connection_kwargs

from .conftest import FreezablePostgres, fast_settings
from .freeze import children, frozen, postmaster_pid

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(60)]


def test_a_call_on_a_frozen_server_is_cut_at_its_deadline(freezable_pg: FreezablePostgres, freezable_dsn: str) -> None:
    watchdog = Watchdog()
    conn = psycopg.connect(freezable_dsn, autocommit=True)
    try:
        with watchdog.deadline(conn, 5.0, "a quick query"):
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert watchdog.fired == 0 and not conn.closed  # a call in time is untouched

        master = postmaster_pid(freezable_pg.data_dir)
        with frozen(freezable_pg) as state:
            assert master in state.pids and set(children(master)) <= set(state.pids)
            with (
                pytest.raises(DeadlineExceeded, match="a query on a frozen server") as caught,
                watchdog.deadline(conn, 0.5, "a query on a frozen server"),
            ):
                conn.execute("SELECT 1")
        assert isinstance(caught.value.__cause__, psycopg.OperationalError)
        assert classify(caught.value) is Failure.TIMEOUT
        assert watchdog.fired == 1 and conn.closed
    finally:
        conn.close()
        watchdog.close()


def test_the_store_fails_within_its_deadlines_and_recovers(
    freezable_pg: FreezablePostgres, freezable_dsn: str, tmp_path: Path
) -> None:
    settings = fast_settings(tmp_path, write_timeout_s=0.5, probe_timeout_s=0.5)
    store = SinkDatabase(freezable_dsn, settings)
    row = event_row("deadline", {"n": 1}, time.time_ns())
    try:
        assert store.write("events", [row]) == 1
        with frozen(freezable_pg):
            errors: list[BaseException] = []

            def call(fn) -> None:  # type: ignore[no-untyped-def]
                try:
                    fn()
                except Exception as exc:
                    errors.append(exc)

            # On a thread, so that a hang shows as a thread still alive rather than a stuck test.
            for fn in (lambda: store.write("events", [row]), store.ping):
                worker = threading.Thread(target=call, args=(fn,), daemon=True)
                worker.start()
                worker.join(30)
                assert not worker.is_alive(), "a store call hung on a frozen server"
            assert len(errors) == 2
            # The write was cut by a deadline (the pool's liveness check, or the insert itself); the probe is cut
            # too, or finds no connection while the pool reconnects to a server that does not answer.
            assert classify(errors[0]) is Failure.TIMEOUT, errors[0]
            assert classify(errors[1]) in (Failure.TIMEOUT, Failure.TRANSIENT), errors[1]
        assert store.deadlines_fired >= 1
        # Thawed: the write that was cut may have committed when the server ran again; the row is there once.
        hang_guard = time.monotonic() + 30
        while True:
            try:
                store.write("events", [row])
                break
            except Exception as exc:  # the pool may still be reconnecting
                if classify(exc) is Failure.REJECTED or time.monotonic() >= hang_guard:
                    pytest.fail(f"the write did not recover: {exc!r}")
                time.sleep(0.1)
        store.ping()
        with psycopg.connect(freezable_dsn) as conn:
            assert conn.execute("SELECT count(*) FROM monitoring.events").fetchone() == (1,)
    finally:
        store.close(5)


def test_tcp_liveness_parameters_are_added_unless_the_dsn_sets_them(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path, write_timeout_s=6.0, connect_timeout_s=1.0)
    kwargs = connection_kwargs("host=db.example port=5432 dbname=x", settings)
    assert kwargs["connect_timeout"] == 2  # libpq's floor
    assert kwargs["keepalives"] == 1 and kwargs["keepalives_count"] == 3
    assert kwargs["keepalives_idle"] == 6 and kwargs["keepalives_interval"] == 2
    assert kwargs["tcp_user_timeout"] == 6000
    assert kwargs["autocommit"] is True and kwargs["application_name"] == "sieve-sink"
    mine = connection_kwargs("postgresql://db.example/x?keepalives_idle=60&tcp_user_timeout=0", settings)
    assert "keepalives_idle" not in mine and "tcp_user_timeout" not in mine and mine["keepalives"] == 1
