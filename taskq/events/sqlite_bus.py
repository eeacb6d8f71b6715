"""Events in the broker's SQLite file: an append-only table that subscribers poll every
``POLL`` seconds while idle (bounded and read as table_rows.py says)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from taskq.errors import TaskQError
from taskq.events.table_rows import BATCH, decode, encode, trim_below
from taskq.sqlite_db import SQLiteConnections

log = logging.getLogger("taskq.events")
SCHEMA = "CREATE TABLE IF NOT EXISTS taskq_events (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);"
POLL = 0.1


class SQLiteEventBus:
    def __init__(self, url: str) -> None:
        self.url = url
        self.db = SQLiteConnections(url, SCHEMA, what="events")
        self._sent = 0

    def publish(self, event: dict[str, Any]) -> None:
        try:
            with self.db.connection() as conn:
                cur = conn.execute("INSERT INTO taskq_events (body) VALUES (?)", (encode(event),))
                self._sent += 1
                below = trim_below(self._sent, cur.lastrowid or 0)
                if below is not None:
                    conn.execute("DELETE FROM taskq_events WHERE id <= ?", (below,))
        except TaskQError as exc:
            log.warning("An event was dropped: %s", exc)

    def subscribe(self) -> SQLiteSubscription:
        return SQLiteSubscription(self.db)

    def close(self) -> None:
        self.db.close()


class SQLiteSubscription:
    def __init__(self, db: SQLiteConnections) -> None:
        self.db = db
        with db.connection() as conn:
            self._last = conn.execute("SELECT COALESCE(MAX(id), 0) FROM taskq_events").fetchone()[0]

    def read(self, timeout: float) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            with self.db.connection() as conn:
                rows = conn.execute(
                    "SELECT id, body FROM taskq_events WHERE id > ? ORDER BY id LIMIT ?", (self._last, BATCH)
                ).fetchall()
            if rows:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(POLL, left))
        self._last = rows[-1][0]
        yield from decode(rows)

    def close(self) -> None:
        pass
