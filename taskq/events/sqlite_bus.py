"""Events in the broker's SQLite file: an append-only table that subscribers poll.

Bounded: every ``TRIM_EVERY`` inserts a publisher deletes all but the newest ``KEEP`` rows,
so a file shared by a busy worker does not grow. A subscriber starts at the newest row and
reads the rows after the last it saw, every ``POLL`` seconds while idle."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from taskq.errors import TaskQError
from taskq.sqlite_db import SQLiteConnections

log = logging.getLogger("taskq.events")
SCHEMA = "CREATE TABLE IF NOT EXISTS taskq_events (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);"
KEEP = 10_000
TRIM_EVERY = 500
POLL = 0.1


class SQLiteEventBus:
    def __init__(self, url: str) -> None:
        self.url = url
        self.db = SQLiteConnections(url, SCHEMA, what="events")
        self._sent = 0

    def publish(self, event: dict[str, Any]) -> None:
        try:
            with self.db.connection() as conn:
                cur = conn.execute("INSERT INTO taskq_events (body) VALUES (?)", (json.dumps(event),))
                self._sent += 1
                if self._sent % TRIM_EVERY == 0:
                    conn.execute("DELETE FROM taskq_events WHERE id <= ?", ((cur.lastrowid or 0) - KEEP,))
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
                    "SELECT id, body FROM taskq_events WHERE id > ? ORDER BY id LIMIT 1000", (self._last,)
                ).fetchall()
            if rows:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(POLL, left))
        for row_id, body in rows:
            self._last = row_id
            try:
                event = json.loads(body)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event

    def close(self) -> None:
        pass
