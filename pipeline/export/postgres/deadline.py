"""Client-side deadlines for calls on a psycopg connection, enforced by shutting the connection's socket down.

``statement_timeout`` is enforced by the server, and a server whose processes are stopped (SIGSTOP, a frozen VM,
a network partition) enforces nothing: psycopg then waits in ``poll()`` for an answer that never comes, over a
Unix socket forever and over TCP until retransmission gives up (~15 min). The ways out, and why this one:

* ``conn.cancel()`` / ``cancel_safe()`` from a timer ask the *server* to cancel: they open a new connection to the
  postmaster, which is stopped too, and even a delivered cancel is acted on by a backend that is not running.
  The blocked call stays blocked.
* Running the call on a thread and abandoning it leaves a thread and a connection behind per timeout: in a long
  freeze they pile up without bound, and each still holds a server slot when the database comes back.
* ``asyncio.wait_for`` on an ``AsyncConnection``: on cancellation psycopg itself tries a server-side cancel (bounded
  by its own 5 s timeouts) before closing, and the sink would need an event loop thread of its own.
* ``shutdown(SHUT_RDWR)`` on the connection's socket (this module): the kernel wakes the thread blocked in
  ``poll()`` at once, libpq reads end-of-file, and the call raises ``OperationalError`` within microseconds, on
  Unix sockets and TCP (and TLS, which runs over it) alike. Nothing is left behind: the connection is closed and
  discarded like any broken one, and the server drops its side when it runs again. ``shutdown`` does not close
  the file descriptor, so libpq still owns it and no other file can take its number; the watchdog shuts a socket
  down only while the call is still armed, under the same lock the caller needs to disarm it, so it never touches
  a connection that has been closed or handed back.

One watchdog thread serves every guarded call of a store; it sleeps until the nearest deadline.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


class DeadlineExceeded(TimeoutError):
    """A call on the database did not finish within its client-side deadline; its connection was closed."""


class _Armed:
    __slots__ = ("conn", "deadline", "fired")

    def __init__(self, conn: Any, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.fired = False


class Watchdog:
    """Guards calls with ``deadline(conn, timeout_s, what)``; thread-safe; ``close()`` ends its thread."""

    def __init__(self, name: str = "sieve-sink-watchdog", clock: Callable[[], float] = time.monotonic) -> None:
        self._name = name
        self._clock = clock
        self._cond = threading.Condition()
        self._armed: list[_Armed] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self.fired = 0  # calls cut short, for stats and tests

    @contextmanager
    def deadline(self, conn: Any, timeout_s: float, what: str) -> Iterator[None]:
        """Run the block with ``conn``; if it is still running after ``timeout_s``, shut the socket down and raise
        ``DeadlineExceeded`` (from the driver's error). A block that finished just as the deadline fired keeps
        its result, but its connection is closed so the pool replaces it."""
        armed = _Armed(conn, self._clock() + timeout_s)
        self._arm(armed)
        try:
            yield
        except Exception as exc:
            if self._disarm(armed):
                raise DeadlineExceeded(f"{what} did not finish within {timeout_s:g} s (client-side deadline)") from exc
            raise
        if self._disarm(armed):
            _close_quietly(conn)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)

    # -- internals ---------------------------------------------------------------------------------------------

    def _arm(self, armed: _Armed) -> None:
        with self._cond:
            self._armed.append(armed)
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _disarm(self, armed: _Armed) -> bool:
        """Remove the call; True when the watchdog fired on it."""
        with self._cond:
            if armed in self._armed:
                self._armed.remove(armed)
            return armed.fired

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._armed:
                    self._cond.wait()
                    continue
                nearest = min(self._armed, key=lambda a: a.deadline)
                remaining = nearest.deadline - self._clock()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                # Still under the lock: the caller cannot disarm, close or return the connection meanwhile.
                self._armed.remove(nearest)
                nearest.fired = True
                self.fired += 1
                _shutdown_socket(nearest.conn)


def _shutdown_socket(conn: Any) -> None:
    try:
        fd = conn.pgconn.socket
    except Exception:  # already closed: nothing is waiting on it
        return
    try:
        # A duplicate descriptor to call shutdown() through; shutdown acts on the socket, shared by both.
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError as exc:
        log.warning("could not shut down a database socket past its deadline: %s", exc)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # closing a connection whose socket is shut down may complain; it is closed either way
        log.debug("closing a connection past its deadline failed", exc_info=True)
