"""SQLite connections shared by the sqlite broker, backend and beat store.

One connection per thread and per process (sqlite3 connections must not cross threads or
a fork). WAL lets readers and one writer work at once across processes on one host;
busy_timeout makes writers queue instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from taskq.display import redact
from taskq.errors import ConfigurationError, TaskQError

BUSY_TIMEOUT = 30.0  # seconds a connection waits for another writer (and its setup retries)
# The WAL file grows to hold everything written between two checkpoints (a bulk enqueue of a
# million tasks wrote 700 MB) and SQLite keeps it at that size afterwards; with this limit it
# is cut back once a checkpoint has copied it into the database (docs/sqlite.md).
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db`` (SQLAlchemy's rule)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        raise ConfigurationError(f"SQLite URL {redact(url)!r} must look like sqlite:///relative.db or sqlite:////abs.db")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ConfigurationError(f"SQLite URL {redact(url)!r} names no file")
    return path


class SQLiteConnections:
    """Lazily opened per-thread connections to one database file, with a schema applied once each.

    ``error`` is the taskq error that sqlite3 errors become at this boundary (BrokerError for
    the broker, BackendError for the result backend, ...), with ``what`` naming the user.
    """

    def __init__(self, url: str, schema: str, error: type[TaskQError] = TaskQError, what: str = "sqlite") -> None:
        self.path = sqlite_path(url)
        self.schema = schema
        self.error = error
        self.what = what
        self._local = threading.local()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, sqlite3 errors translated."""
        try:
            yield self.get()
        except sqlite3.Error as exc:
            raise self.error(f"{self.what} {self.path}: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error): one writer at a time."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        deadline, pause = time.monotonic() + BUSY_TIMEOUT, 0.005
        while True:
            try:
                conn = self._open()
                break
            except sqlite3.OperationalError as exc:
                # Switching a new file to WAL (or creating its tables) while another thread or
                # process does the same can fail with "database is locked" at once: SQLite
                # does not wait on that lock. Try again, as a busy writer would wait.
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise ConfigurationError(f"cannot open SQLite database {self.path!r}: {exc}") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
            except sqlite3.Error as exc:
                raise ConfigurationError(f"cannot open SQLite database {self.path!r}: {exc}") from None
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA journal_size_limit={int(WAL_SIZE_LIMIT)}")
            conn.executescript(self.schema)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None
