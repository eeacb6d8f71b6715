"""Events in the PostgreSQL broker's schema: an append-only ``events`` table (migration 3)
whose insert trigger NOTIFYs subscribers, so they wake at once and query nothing while idle
beyond one safety look per recovery period (listen.py). Bounded and read as table_rows.py says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from taskq.brokers.postgres.connection import PgConnections, split_url
from taskq.brokers.postgres.listen import IdCursor, NotifiedReader
from taskq.brokers.postgres.migrations import SchemaCheck, events_channel
from taskq.errors import BrokerError, TaskQError
from taskq.events.table_rows import BATCH, decode, encode, trim_below

log = logging.getLogger("taskq.events")


def connections(conninfo: str, schema: str) -> PgConnections:
    return PgConnections(conninfo, BrokerError, f"postgresql events ({schema})", SchemaCheck(schema))


class PostgresEventBus:
    def __init__(self, url: str, safety: float) -> None:
        self.conninfo, self.schema = split_url(url)
        self.safety = safety
        self.db = connections(self.conninfo, self.schema)
        self._sent = 0

    def publish(self, event: dict[str, Any]) -> None:
        body = encode(event)

        def insert(conn: Any) -> None:
            row = conn.execute(f'INSERT INTO "{self.schema}".events (body) VALUES (%s) RETURNING id', (body,))
            self._sent += 1
            below = trim_below(self._sent, int(row.fetchone()[0]))
            if below is not None:
                conn.execute(f'DELETE FROM "{self.schema}".events WHERE id <= %s', (below,))

        try:
            self.db.run(insert)
        except TaskQError as exc:
            log.warning("An event was dropped: %s", exc)

    def subscribe(self) -> PostgresSubscription:
        return PostgresSubscription(connections(self.conninfo, self.schema), self.schema, self.safety)

    def close(self) -> None:
        self.db.close()


class PostgresSubscription:
    """Reads on connections of its own (their LISTEN is for it alone), closed with it."""

    def __init__(self, db: PgConnections, schema: str, safety: float) -> None:
        self.db = db
        self.schema = schema
        self.reader = NotifiedReader(db, events_channel(schema), safety)
        with db.connection() as conn:
            last = int(conn.execute(f'SELECT coalesce(max(id), 0) FROM "{schema}".events').fetchone()[0])
        self.cursor = IdCursor(last)

    def _new_rows(self, conn: Any) -> list[tuple[int, str]]:
        sql = f'SELECT id, body FROM "{self.schema}".events WHERE id > %s OR id = ANY(%s) ORDER BY id LIMIT %s'
        return list(conn.execute(sql, (self.cursor.last, self.cursor.gaps, BATCH)).fetchall())

    def read(self, timeout: float) -> Iterator[dict[str, Any]]:
        rows = self.reader.read(self._new_rows, timeout)
        self.cursor.advance([r[0] for r in rows])
        yield from decode(rows)

    def close(self) -> None:
        self.db.close()
