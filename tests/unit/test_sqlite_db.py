"""SQLite connection set-up under concurrency: threads opening a new file at once."""

from __future__ import annotations

import threading
from pathlib import Path

from taskq.sqlite_db import SQLiteConnections

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, n INTEGER NOT NULL);"
THREADS = 8


def open_at_once(db: SQLiteConnections) -> list[Exception]:
    """THREADS threads open their first connection at the same moment and write one row."""
    start, errors = threading.Barrier(THREADS), []

    def open_and_write(name: str) -> None:
        start.wait()
        try:
            with db.transaction() as conn:
                conn.execute("INSERT INTO t VALUES (?, 1)", (name,))
        except Exception as exc:  # collected: an exception in a thread would go unseen
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(f"w{i}",)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_threads_opening_a_new_file_at_once_all_get_a_connection(tmp_path: Path) -> None:
    # Switching a fresh file to WAL fails at once with "database is locked" when another
    # connection does it at the same moment (SQLite does not wait on that lock): set-up retries.
    for trial in range(25):
        db = SQLiteConnections(f"sqlite:///{tmp_path}/t{trial}.db", SCHEMA)
        assert open_at_once(db) == []
        with db.connection() as conn:
            assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == THREADS
