"""Remote control in the broker's SQLite file: a request table every node reads, a reply table
each client reads for its ticket, and a table of live node names.

Rows are stored, read and trimmed as table_rows.py says. Nodes and clients poll every
``POLL`` seconds while they wait (a control round trip costs up to two polls)."""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

from taskq.control.mailbox import ControlRequest
from taskq.control.stats import alive
from taskq.control.table_rows import KEEP_SECONDS, collect, decode_replies, decode_requests, reply_row, request_row
from taskq.errors import BrokerError
from taskq.sqlite_db import SQLiteConnections

SCHEMA = """
CREATE TABLE IF NOT EXISTS taskq_pidbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, headers TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS taskq_pidbox_replies (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ticket TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS taskq_pidbox_replies_ticket ON taskq_pidbox_replies (ticket);
CREATE TABLE IF NOT EXISTS taskq_pidbox_nodes (
    hostname TEXT PRIMARY KEY, seen REAL NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL);
"""
POLL = 0.05
NODE_FRESH = 3.0  # a node that polled within this many seconds holds its name
SEEN_EVERY = 1.0


class SQLiteMailbox:
    def __init__(self, url: str) -> None:
        self.db = SQLiteConnections(url, SCHEMA, BrokerError, "control")

    def _send(self, method: str, arguments: dict[str, Any], destination: list[str] | None,
              ticket: str | None, timeout: float) -> None:
        now = time.time()
        headers, body = request_row(method, arguments, destination, ticket, timeout)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM taskq_pidbox WHERE created < ?", (now - KEEP_SECONDS,))
            conn.execute("DELETE FROM taskq_pidbox_replies WHERE created < ?", (now - KEEP_SECONDS,))
            conn.execute("INSERT INTO taskq_pidbox (created, headers, body) VALUES (?, ?, ?)", (now, headers, body))

    def call(
        self, method: str, arguments: dict[str, Any], destination: list[str] | None, timeout: float,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        ticket = str(uuid.uuid4())
        self._send(method, arguments, destination, ticket, timeout)
        last = 0

        def read_new(left: float) -> list[dict[str, Any]]:
            nonlocal last
            time.sleep(min(POLL, left))
            with self.db.connection() as conn:
                rows = conn.execute(
                    "SELECT id, body FROM taskq_pidbox_replies WHERE ticket = ? AND id > ? ORDER BY id", (ticket, last)
                ).fetchall()
            last = rows[-1][0] if rows else last
            return decode_replies(rows)

        return collect(read_new, timeout, destination, limit)

    def cast(self, method: str, arguments: dict[str, Any], destination: list[str] | None) -> None:
        self._send(method, arguments, destination, None, 0)

    def name_in_use(self, hostname: str) -> bool:
        """A node polled within NODE_FRESH seconds holds the name, unless it ran on this host
        and its process is gone (a worker restarted right after a crash takes its name back)."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT seen, host, pid FROM taskq_pidbox_nodes WHERE hostname = ?", (hostname,)
            ).fetchone()
        if row is None or row[0] <= time.time() - NODE_FRESH:
            return False
        return row[1] != socket.gethostname() or alive(row[2])

    def node(self, hostname: str) -> SQLiteNode:
        return SQLiteNode(self.db, hostname)

    def close(self) -> None:
        self.db.close()


class SQLiteNode:
    def __init__(self, db: SQLiteConnections, hostname: str) -> None:
        self.db = db
        self.hostname = hostname
        self._seen_at = 0.0
        with db.connection() as conn:
            self._last = conn.execute("SELECT COALESCE(MAX(id), 0) FROM taskq_pidbox").fetchone()[0]
        self._mark_seen()

    def _mark_seen(self) -> None:
        self._seen_at = time.monotonic()
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO taskq_pidbox_nodes (hostname, seen, host, pid) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (hostname) DO UPDATE SET seen = excluded.seen, host = excluded.host, pid = excluded.pid",
                (self.hostname, time.time(), socket.gethostname(), os.getpid()),
            )

    def poll(self, timeout: float) -> list[ControlRequest | str]:
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() - self._seen_at >= SEEN_EVERY:
                self._mark_seen()
            with self.db.connection() as conn:
                rows = conn.execute(
                    "SELECT id, headers, body FROM taskq_pidbox WHERE id > ? ORDER BY id", (self._last,)
                ).fetchall()
            if rows or time.monotonic() >= deadline:
                break
            time.sleep(min(POLL, max(deadline - time.monotonic(), 0.0)))
        if rows:
            self._last = rows[-1][0]
        return decode_requests(rows)

    def reply(self, request: ControlRequest, hostname: str, result: Any) -> None:
        row = reply_row(request, hostname, result)
        if row is None:
            return
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO taskq_pidbox_replies (ticket, created, body) VALUES (?, ?, ?)",
                (row[0], time.time(), row[1]),
            )

    def close(self) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM taskq_pidbox_nodes WHERE hostname = ?", (self.hostname,))
        self.db.close()
