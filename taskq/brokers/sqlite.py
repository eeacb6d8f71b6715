"""The embedded default broker: one SQLite file, several processes on one host, no server.

Messages live in one table. Fetching *claims* rows (owner, claim_until) in one UPDATE ...
RETURNING statement, which SQLite runs atomically; acking deletes them. A claim that its
owner stops extending expires after the recovery time and the row is fetched again, with
``redeliveries`` counted. Delayed messages are rows whose ``eta`` lies ahead.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Sequence

from taskq.brokers.base import DeadLetter, Delivery, Publication, decode_delivery
from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import BrokerError
from taskq.pid import current_pid
from taskq.sqlite_db import SQLiteConnections

SCHEMA = """
CREATE TABLE IF NOT EXISTS taskq_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    eta REAL NOT NULL DEFAULT 0,
    payload BLOB NOT NULL,
    claim_owner TEXT,
    claim_until REAL,
    redeliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS taskq_messages_next ON taskq_messages (queue, priority DESC, id);
CREATE TABLE IF NOT EXISTS taskq_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL,
    failed_at REAL NOT NULL,
    payload BLOB NOT NULL
);
"""


def insert_messages(conn: sqlite3.Connection, items: Sequence[Publication]) -> None:
    """Enqueue inside the caller's transaction: one statement for many messages."""
    rows = [(p.queue, p.envelope.priority, p.eta or 0.0, p.envelope.to_bytes()) for p in items]
    conn.executemany("INSERT INTO taskq_messages (queue, priority, eta, payload) VALUES (?, ?, ?, ?)", rows)


class SQLiteBroker:
    counts_redeliveries = True

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.url = url
        self.recovery_time = settings.recovery_time
        self.poll_interval = settings.broker_poll_interval
        self._db = SQLiteConnections(url, SCHEMA, BrokerError, "sqlite broker")
        self._owner_pid = -1
        self._owner = ""

    @property
    def owner(self) -> str:
        """Claim owner id, new after a fork so parent and child never share claims."""
        if self._owner_pid != current_pid():
            self._owner, self._owner_pid = uuid.uuid4().hex, current_pid()
        return self._owner

    def publish(self, queue: str, envelope: Envelope, eta: float | None = None) -> None:
        self.publish_many([Publication(queue, envelope, eta)])

    def publish_many(self, items: Sequence[Publication]) -> None:
        with self._db.transaction() as conn:
            insert_messages(conn, items)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for a caller that must enqueue inside its own
        transaction on the same file (beat's claim-and-enqueue step)."""
        return self._db.get()

    def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            taken = self._claim(queues, max_count)
            if taken or time.monotonic() >= deadline:
                return taken
            time.sleep(max(0.0, min(self.poll_interval, deadline - time.monotonic())))

    def _claim(self, queues: Sequence[str], max_count: int) -> list[Delivery]:
        now = time.time()
        marks = ",".join("?" * len(queues))
        ready = f"queue IN ({marks}) AND eta <= ? AND (claim_until IS NULL OR claim_until < ?)"
        with self._db.connection() as conn:
            # A read first: idle workers poll without taking the write lock.
            probe = conn.execute(f"SELECT 1 FROM taskq_messages WHERE {ready} LIMIT 1", (*queues, now, now))
            if probe.fetchone() is None:
                return []
            rows = conn.execute(
                f"""UPDATE taskq_messages
                    SET claim_owner = ?, claim_until = ?, redeliveries = redeliveries + (claim_until IS NOT NULL)
                    WHERE id IN (SELECT id FROM taskq_messages WHERE {ready} ORDER BY priority DESC, id LIMIT ?)
                    RETURNING id, queue, priority, payload, redeliveries""",
                (self.owner, now + self.recovery_time, *queues, now, now, max_count),
            ).fetchall()
        rows.sort(key=lambda r: (-r[2], r[0]))
        return [decode_delivery(bytes(r[3]), r[1], r[0], r[4]) for r in rows]

    def _update_claimed(self, sql: str, deliveries: Sequence[Delivery], *params: object) -> None:
        if not deliveries:
            return
        ids = [d.tag for d in deliveries]
        marks = ",".join("?" * len(ids))
        with self._db.connection() as conn:
            conn.execute(sql.format(marks=marks), (*params, *ids, self.owner))

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._update_claimed("DELETE FROM taskq_messages WHERE id IN ({marks}) AND claim_owner = ?", deliveries)

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        self._update_claimed(
            "UPDATE taskq_messages SET claim_owner = NULL, claim_until = NULL"
            " WHERE id IN ({marks}) AND claim_owner = ?",
            deliveries,
        )

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        self._update_claimed(
            "UPDATE taskq_messages SET claim_until = ? WHERE id IN ({marks}) AND claim_owner = ?",
            deliveries,
            time.time() + self.recovery_time,
        )

    @property
    def claim_owner(self) -> str:
        return self.owner

    def abandon(self, deliveries: Sequence[Delivery]) -> None:
        # An owner nobody extends and a claim that has lapsed: the next fetch takes the row
        # and counts the redelivery, as for a dead worker's claim.
        self._update_claimed(
            "UPDATE taskq_messages SET claim_owner = '', claim_until = 0 WHERE id IN ({marks}) AND claim_owner = ?",
            deliveries,
        )

    def extend_owner(self, owner: str, queues: Sequence[str]) -> int:
        """Extend every claim of ``owner`` (another process's) on these queues: one UPDATE
        that scans these queues' rows (no index on the owner: it would cost every claim)."""
        marks = ",".join("?" * len(queues))
        with self._db.connection() as conn:
            return conn.execute(
                f"UPDATE taskq_messages SET claim_until = ? WHERE queue IN ({marks}) AND claim_owner = ?",
                (time.time() + self.recovery_time, *queues, owner),
            ).rowcount

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._db.transaction() as conn:
            row = conn.execute(
                "DELETE FROM taskq_messages WHERE id = ? AND claim_owner = ? RETURNING queue, priority, payload",
                (delivery.tag, self.owner),
            ).fetchone()
            if row is not None:
                message_id = delivery.envelope.id if delivery.envelope else ""
                conn.execute(
                    "INSERT INTO taskq_dead_letters (message_id, queue, priority, reason, failed_at, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (message_id or f"undecodable-{delivery.tag}", row[0], row[1], reason, time.time(), row[2]),
                )

    def queue_length(self, queue: str) -> int:
        with self._db.connection() as conn:
            return int(conn.execute("SELECT count(*) FROM taskq_messages WHERE queue = ?", (queue,)).fetchone()[0])

    def queues(self) -> list[str]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT queue FROM taskq_messages UNION SELECT queue FROM taskq_dead_letters ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]

    def purge(self, queue: str) -> int:
        with self._db.connection() as conn:
            return conn.execute(
                "DELETE FROM taskq_messages WHERE queue = ? AND (claim_until IS NULL OR claim_until < ?)",
                (queue, time.time()),
            ).rowcount

    def _dead_filter(self, queue: str | None, ids: Sequence[str]) -> tuple[str, list[object]]:
        clauses: list[str] = ["1"]
        params: list[object] = []
        if queue is not None:
            clauses.append("queue = ?")
            params.append(queue)
        if ids:
            clauses.append(f"message_id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        return " AND ".join(clauses), params

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        where, params = self._dead_filter(queue, ())
        with self._db.connection() as conn:
            rows = conn.execute(
                f"SELECT message_id, queue, reason, failed_at, payload FROM taskq_dead_letters WHERE {where}"
                " ORDER BY id LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

    def dead_letter_count(self, queue: str) -> int:
        with self._db.connection() as conn:
            return int(conn.execute("SELECT count(*) FROM taskq_dead_letters WHERE queue = ?", (queue,)).fetchone()[0])

    def requeue_dead_letters(self, queue: str | None = None, ids: Sequence[str] = ()) -> int:
        where, params = self._dead_filter(queue, ids)
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"DELETE FROM taskq_dead_letters WHERE {where} RETURNING queue, priority, payload", params
            ).fetchall()
            conn.executemany("INSERT INTO taskq_messages (queue, priority, payload) VALUES (?, ?, ?)", rows)
        return len(rows)

    def purge_dead_letters(self, queue: str | None = None) -> int:
        where, params = self._dead_filter(queue, ())
        with self._db.connection() as conn:
            return conn.execute(f"DELETE FROM taskq_dead_letters WHERE {where}", params).rowcount

    def close(self) -> None:
        self._db.close()
