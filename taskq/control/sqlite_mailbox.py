"""Remote control in the broker's SQLite file: a request table every node reads, a reply table
each client reads for its ticket, and a table of live node names.

Rows older than ``KEEP_SECONDS`` are deleted by the next client call, so the tables stay
small. Nodes and clients poll every ``POLL`` seconds while they wait (a control round trip
costs up to two polls)."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any

from taskq.control.mailbox import ControlRequest, parse_request
from taskq.control.stats import alive
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
KEEP_SECONDS = 60.0
NODE_FRESH = 3.0  # a node that polled within this many seconds holds its name
SEEN_EVERY = 1.0


class SQLiteMailbox:
    def __init__(self, url: str) -> None:
        self.db = SQLiteConnections(url, SCHEMA, BrokerError, "control")

    def _send(self, method: str, arguments: dict[str, Any], destination: list[str] | None,
              ticket: str | None, timeout: float) -> None:
        now = time.time()
        body = {"method": method, "arguments": arguments, "destination": destination, "pattern": None,
                "matcher": None}
        if ticket is not None:
            body.update(ticket=ticket, reply_to={"exchange": "reply.celery.pidbox", "routing_key": ticket})
        headers = {"clock": 0, "expires": now + timeout if timeout else 0}
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM taskq_pidbox WHERE created < ?", (now - KEEP_SECONDS,))
            conn.execute("DELETE FROM taskq_pidbox_replies WHERE created < ?", (now - KEEP_SECONDS,))
            conn.execute(
                "INSERT INTO taskq_pidbox (created, headers, body) VALUES (?, ?, ?)",
                (now, json.dumps(headers), json.dumps(body)),
            )

    def call(
        self, method: str, arguments: dict[str, Any], destination: list[str] | None, timeout: float,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        ticket = str(uuid.uuid4())
        self._send(method, arguments, destination, ticket, timeout)
        limit = limit or (len(destination) if destination else None)
        replies: list[dict[str, Any]] = []
        last, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline and (limit is None or len(replies) < limit):
            time.sleep(POLL)
            with self.db.connection() as conn:
                rows = conn.execute(
                    "SELECT id, body FROM taskq_pidbox_replies WHERE ticket = ? AND id > ? ORDER BY id", (ticket, last)
                ).fetchall()
            for row_id, body in rows:
                last = row_id
                reply = json.loads(body)
                if isinstance(reply, dict):
                    replies.append(reply)
        return replies

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
        out: list[ControlRequest | str] = []
        for row_id, headers, body in rows:
            self._last = row_id
            try:
                out.append(parse_request(json.loads(body), json.loads(headers)))
            except ValueError as exc:
                out.append(f"undecodable: {exc}")
        return out

    def reply(self, request: ControlRequest, hostname: str, result: Any) -> None:
        if request.reply_to is None or request.ticket is None:
            return
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO taskq_pidbox_replies (ticket, created, body) VALUES (?, ?, ?)",
                (request.ticket, time.time(), json.dumps({hostname: result}, default=repr)),
            )

    def close(self) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM taskq_pidbox_nodes WHERE hostname = ?", (self.hostname,))
        self.db.close()
