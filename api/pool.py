"""A small, bounded pool of PostgreSQL connections for the API's worker threads.

Each request borrows one connection and returns it; a borrowed connection that was left
in a transaction is rolled back, and a broken one is closed and replaced. Bounded so
that a burst of requests waits for a connection instead of opening hundreds.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator

import psycopg
from psycopg import pq

from core.errors import StoreError
from store.db import connect

_log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]


class ConnectionPool:
    def __init__(self, url: str, *, size: int, timeout_s: float = 10.0) -> None:
        self._url = url
        self._size = size
        self._timeout_s = timeout_s
        self._idle: queue.LifoQueue[Conn] = queue.LifoQueue()
        self._opened = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Conn]:
        conn = self._borrow()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _borrow(self) -> Conn:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._opened < self._size:
                self._opened += 1
                try:
                    return connect(self._url, application_name="mamori-api")
                except StoreError:
                    self._opened -= 1
                    raise
        try:
            return self._idle.get(timeout=self._timeout_s)
        except queue.Empty as exc:
            raise StoreError(f"no database connection free within {self._timeout_s:.0f} s") from exc

    def _give_back(self, conn: Conn) -> None:
        status = conn.info.transaction_status
        if not conn.closed and status != pq.TransactionStatus.UNKNOWN:
            try:
                if status != pq.TransactionStatus.IDLE:
                    conn.rollback()
                self._idle.put(conn)
                return
            except psycopg.Error:
                _log.warning("dropping a database connection that failed to roll back")
        with contextlib.suppress(psycopg.Error):
            conn.close()
        with self._lock:
            self._opened -= 1

    def close(self) -> None:
        """Close the idle connections. The pool stays usable: an ASGI server may run the
        app's lifespan more than once (test clients do), and a request still in flight
        returns its connection afterwards."""
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                break
            with contextlib.suppress(psycopg.Error):
                conn.close()
            with self._lock:
                self._opened -= 1
