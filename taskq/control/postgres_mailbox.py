"""Remote control in the PostgreSQL broker's schema (migration 3): a ``pidbox`` request table
every node reads and a ``pidbox_replies`` table each client reads for its ticket, stored as
table_rows.py says. Insert triggers NOTIFY, so nodes and clients wake at once and, while
idle, query nothing beyond one safety look per recovery period (listen.py).

A live node holds a session advisory lock named after its hostname on its listening
connection: ``name_in_use`` tries that lock. The server releases it when the node's
connection ends, however its process died, so a restarted worker takes its name back.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from taskq.brokers.postgres.connection import PgConnections, driver_error, split_url
from taskq.brokers.postgres.listen import IdCursor, NotifiedReader
from taskq.brokers.postgres.migrations import SchemaCheck, pidbox_channel, reply_channel
from taskq.control.mailbox import ControlRequest
from taskq.control.table_rows import KEEP_SECONDS, collect, decode_replies, decode_requests, reply_row, request_row
from taskq.errors import BrokerError

log = logging.getLogger("taskq.control")
NAME_LOCK = "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))"
NAME_UNLOCK = "SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))"
NAME_FREE = "SELECT CASE WHEN pg_try_advisory_lock(hashtext(%s), hashtext(%s)) " \
            "THEN NOT pg_advisory_unlock(hashtext(%s), hashtext(%s)) ELSE true END"


def connections(conninfo: str, schema: str, what: str) -> PgConnections:
    return PgConnections(conninfo, BrokerError, f"postgresql {what} ({schema})", SchemaCheck(schema))


class PostgresMailbox:
    def __init__(self, url: str, safety: float) -> None:
        self.conninfo, self.schema = split_url(url)
        self.safety = safety
        self.db = connections(self.conninfo, self.schema, "control")
        self.replies = NotifiedReader(self.db, reply_channel(self.schema), safety)

    def _send(self, method: str, arguments: dict[str, Any], destination: list[str] | None,
              ticket: str | None, timeout: float) -> None:
        headers, body = request_row(method, arguments, destination, ticket, timeout)
        s, keep = self.schema, f"{KEEP_SECONDS} seconds"

        def send(conn: Any) -> None:
            with conn.transaction():
                conn.execute(f'DELETE FROM "{s}".pidbox WHERE created < now() - %s::interval', (keep,))
                conn.execute(f'DELETE FROM "{s}".pidbox_replies WHERE created < now() - %s::interval', (keep,))
                conn.execute(f'INSERT INTO "{s}".pidbox (headers, body) VALUES (%s, %s)', (headers, body))

        self.db.run(send)

    def call(
        self, method: str, arguments: dict[str, Any], destination: list[str] | None, timeout: float,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        ticket = str(uuid.uuid4())
        self._send(method, arguments, destination, ticket, timeout)
        seen: list[int] = []  # replies commit in any order: ask for those not read yet, by id
        sql = f'SELECT id, body FROM "{self.schema}".pidbox_replies WHERE ticket = %s AND id <> ALL(%s) ORDER BY id'

        def read_new(left: float) -> list[dict[str, Any]]:
            rows = self.replies.read(lambda conn: list(conn.execute(sql, (ticket, seen)).fetchall()), left)
            seen.extend(r[0] for r in rows)
            return decode_replies(rows)

        return collect(read_new, timeout, destination, limit)

    def cast(self, method: str, arguments: dict[str, Any], destination: list[str] | None) -> None:
        self._send(method, arguments, destination, None, 0)

    def name_in_use(self, hostname: str) -> bool:
        """Whether a live node holds the name's lock (taken and given back at once if free)."""
        key = (f"taskq-node:{self.schema}", hostname)
        with self.db.connection() as conn:
            return bool(conn.execute(NAME_FREE, key + key).fetchone()[0])

    def node(self, hostname: str) -> PostgresNode:
        return PostgresNode(self.conninfo, self.schema, hostname, self.safety)

    def close(self) -> None:
        self.db.close()


class PostgresNode:
    """A worker's mailbox, on connections of its own (the name's lock lives on one of them)."""

    def __init__(self, conninfo: str, schema: str, hostname: str, safety: float) -> None:
        self.schema = schema
        self.hostname = hostname
        self.db = connections(conninfo, schema, "control")
        self._holder: Any = None  # the connection holding the name's lock
        self.requests = NotifiedReader(self.db, pidbox_channel(schema), safety, self._hold_name)
        # LISTEN and take the name now; requests sent from here on wake the first poll
        self.requests.read(lambda conn: [], 0.0)
        with self.db.connection() as conn:
            last = int(conn.execute(f'SELECT coalesce(max(id), 0) FROM "{schema}".pidbox').fetchone()[0])
        self.cursor = IdCursor(last)

    def _hold_name(self, conn: Any) -> None:
        """Take the name's lock on a new listening connection, unless another of ours, still
        open, holds it (the node was made in one thread and is polled in another)."""
        if self._holder is not None and not self._holder.closed:
            return
        if conn.execute(NAME_LOCK, (f"taskq-node:{self.schema}", self.hostname)).fetchone()[0]:
            self._holder = conn
        else:
            log.warning("Another live worker holds the name %s", self.hostname)

    def _new_rows(self, conn: Any) -> list[tuple[int, str, str]]:
        sql = f'SELECT id, headers, body FROM "{self.schema}".pidbox WHERE id > %s OR id = ANY(%s) ORDER BY id'
        return list(conn.execute(sql, (self.cursor.last, self.cursor.gaps)).fetchall())

    def poll(self, timeout: float) -> list[ControlRequest | str]:
        try:
            rows = self.requests.read(self._new_rows, timeout)
        except BrokerError as exc:  # the server went away: the next poll reconnects
            log.warning("Remote control: %s", exc)
            time.sleep(min(timeout, 1.0))
            return []
        self.cursor.advance([r[0] for r in rows])
        return decode_requests(rows)

    def reply(self, request: ControlRequest, hostname: str, result: Any) -> None:
        row = reply_row(request, hostname, result)
        if row is not None:
            self.db.run(lambda conn: conn.execute(
                f'INSERT INTO "{self.schema}".pidbox_replies (ticket, body) VALUES (%s, %s)', row
            ))

    def close(self) -> None:
        # The server drops the lock with the session, but only once it has seen the session
        # end: give it back first, so a name check right after close finds it free.
        conn, self._holder = self._holder, None
        if conn is not None and not conn.closed:
            try:
                conn.execute(NAME_UNLOCK, (f"taskq-node:{self.schema}", self.hostname))
            except driver_error():
                pass  # the connection is gone, and the lock with it
        self.db.close()
