"""Result backend in a SQLite file (by default the broker's own file).

SQLite cannot notify, so ``wait_for`` polls; each poll first asks ``PRAGMA data_version``,
which changes only when another connection commits, so an idle wait reads no rows.
"""

from __future__ import annotations

import time

from taskq.backends.base import ResultBackend
from taskq.config import Settings
from taskq.errors import BackendError
from taskq.sqlite_db import SQLiteConnections

SCHEMA = """
CREATE TABLE IF NOT EXISTS taskq_results (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS taskq_chord_parts (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    value BLOB NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (key, member)
);
CREATE TABLE IF NOT EXISTS taskq_counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires REAL NOT NULL
);
"""


class SQLiteBackend(ResultBackend):
    poll_interval = 0.02

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        super().__init__(url, settings or Settings())
        self._db = SQLiteConnections(url, SCHEMA, BackendError, "sqlite result backend")

    def _get(self, key: str) -> bytes | None:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT value FROM taskq_results WHERE key = ? AND expires >= ?", (key, time.time())
            ).fetchone()
        return None if row is None else bytes(row[0])

    def _set(self, key: str, value: bytes, ttl: float) -> None:
        with self._db.connection() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO taskq_results (key, value, expires) VALUES (?, ?, ?)",
                (key, value, time.time() + ttl),
            )

    def _delete(self, key: str) -> None:
        with self._db.connection() as conn:
            conn.execute("DELETE FROM taskq_results WHERE key = ?", (key,))

    def reset_counter(self, key: str) -> None:
        with self._db.connection() as conn:
            conn.execute("DELETE FROM taskq_counters WHERE key = ?", (key,))

    def _incr(self, key: str, ttl: float) -> int:
        now = time.time()
        with self._db.connection() as conn:
            row = conn.execute(
                """INSERT INTO taskq_counters (key, value, expires) VALUES (?, 1, ?)
                   ON CONFLICT (key) DO UPDATE SET
                       value = CASE WHEN expires < ? THEN 1 ELSE value + 1 END, expires = excluded.expires
                   RETURNING value""",
                (key, now + ttl, now),
            ).fetchone()
        return int(row[0])

    supports_chords = True

    def _chord_add(self, key: str, member: str, value: bytes, ttl: float) -> int:
        """One transaction: the part is inserted unless its task id is there, then counted."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO taskq_chord_parts (key, member, value, expires) VALUES (?, ?, ?, ?)",
                (key, member, value, time.time() + ttl),
            )
            row = conn.execute("SELECT COUNT(*) FROM taskq_chord_parts WHERE key = ?", (key,)).fetchone()
        return int(row[0])

    def _chord_members(self, key: str) -> list[bytes]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT value FROM taskq_chord_parts WHERE key = ?", (key,)).fetchall()
        return [bytes(r[0]) for r in rows]

    def _chord_delete(self, key: str) -> None:
        with self._db.connection() as conn:
            conn.execute("DELETE FROM taskq_chord_parts WHERE key = ?", (key,))

    def _wait(self, key: str, timeout: float) -> None:
        with self._db.connection() as conn:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            deadline = time.monotonic() + min(timeout, 1.0)
            while time.monotonic() < deadline:
                time.sleep(self.poll_interval)
                if conn.execute("PRAGMA data_version").fetchone()[0] != version:
                    return

    def cleanup(self) -> int:
        now = time.time()
        with self._db.connection() as conn:
            removed = conn.execute("DELETE FROM taskq_results WHERE expires < ?", (now,)).rowcount
            conn.execute("DELETE FROM taskq_counters WHERE expires < ?", (now,))
            conn.execute("DELETE FROM taskq_chord_parts WHERE expires < ?", (now,))
        return int(removed)

    def close(self) -> None:
        self._db.close()
