"""SQLite connection set-up under concurrency: threads opening a new file at once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from taskq import sqlite_db
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


def test_the_wal_is_cut_back_after_a_big_transaction_is_checkpointed(tmp_path: Path, monkeypatch: Any) -> None:
    """Without journal_size_limit the -wal file keeps the size of the largest transaction."""
    monkeypatch.setattr(sqlite_db, "WAL_SIZE_LIMIT", 256 * 1024)
    db = SQLiteConnections(f"sqlite:///{tmp_path / 'q.db'}", "CREATE TABLE IF NOT EXISTS t (b BLOB)")
    wal = tmp_path / "q.db-wal"
    try:
        with db.transaction() as conn:  # one transaction of about 8 MB
            conn.executemany("INSERT INTO t VALUES (?)", [(b"x" * 4000,)] * 2000)
        grown = wal.stat().st_size
        assert grown > 4 * 1024 * 1024
        with db.connection() as conn:
            conn.execute("DELETE FROM t")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # what SQLite's auto-checkpoint runs
            conn.execute("INSERT INTO t VALUES (x'00')")  # the next writer restarts the WAL
        assert wal.stat().st_size <= 512 * 1024 < grown
    finally:
        db.close()
