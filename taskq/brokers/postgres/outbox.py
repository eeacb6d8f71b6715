"""The outbox: transactional enqueue for brokers that are not PostgreSQL (Redis, RabbitMQ).

``task.delay()`` inside ``app.transaction(conn)`` (or with ``using=conn``) writes the message
into ``<schema>.outbox`` in the caller's PostgreSQL transaction, where ``outbox_url`` names
that database and schema. ``taskq outbox relay`` moves committed rows to the broker in id
order: in one transaction it reads a batch, publishes it (confirmed, on RabbitMQ), deletes
it and commits. A relay killed in the middle of a batch has not committed the delete, so
the next relay sends that batch again (at most that batch twice) and loses nothing. One
relay works at a time (an advisory lock); others wait for it, which keeps the order. The
relay sleeps on LISTEN between batches: an insert's trigger NOTIFYs it at commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from taskq.brokers.base import Broker, Publication
from taskq.brokers.postgres.callers import caller_execute, sqlalchemy_errors
from taskq.brokers.postgres.connection import PgConnections, driver_error, one_line, split_url
from taskq.brokers.postgres.migrations import ensure_current, outbox_channel
from taskq.brokers.postgres.statements import insert_messages
from taskq.envelope import Envelope
from taskq.errors import BrokerError, InvalidMessage

log = logging.getLogger("taskq.outbox")
SAFETY_LOOK = 5.0  # seconds: the relay looks even without a notification (one lost with a connection)


@dataclass(frozen=True)
class OutboxStatements:
    schema: str

    @property
    def insert_one(self) -> str:
        return f'INSERT INTO "{self.schema}".outbox (queue, priority, eta, payload) VALUES (%s, %s, %s, %s)'

    @property
    def insert(self) -> str:
        return (
            f'INSERT INTO "{self.schema}".outbox (queue, priority, eta, payload)'
            " SELECT * FROM unnest(%s::text[], %s::smallint[], %s::float8[], %s::bytea[])"
        )


class Outbox:
    def __init__(self, url: str) -> None:
        self.url = url
        self.conninfo, self.schema = split_url(url)
        self.sql = OutboxStatements(self.schema)
        self.channel = outbox_channel(self.schema)
        self._db = PgConnections(self.conninfo, BrokerError, f"outbox ({self.schema})", self._on_open)
        self._checked = False

    def _on_open(self, conn: Any) -> None:
        if not self._checked:
            ensure_current(conn, self.schema)
            self._checked = True

    def enqueue_in(self, conn: Any, items: Sequence[Publication]) -> None:
        """One INSERT per message (one per chunk for many) on the caller's connection."""
        execute = caller_execute(conn, self.conninfo)
        if items:
            with self._db.connection():
                pass  # the outbox table exists before the caller's transaction writes to it
            try:
                insert_messages(execute, self.sql, items)
            except (driver_error(), *sqlalchemy_errors()) as exc:
                raise BrokerError(f"enqueue in your transaction (outbox): {one_line(exc)}") from None

    def pending(self) -> int:
        return int(self._db.run(lambda c: c.execute(f'SELECT count(*) FROM "{self.schema}".outbox').fetchone()[0]))

    def relay_batch(self, conn: Any, broker: Broker, size: int) -> int:
        """Move the oldest ``size`` committed rows to the broker; returns how many."""
        with conn.transaction():
            rows = conn.execute(
                f'SELECT id, queue, eta, payload FROM "{self.schema}".outbox ORDER BY id LIMIT %s FOR UPDATE', (size,)
            ).fetchall()
            publications = []
            for row_id, queue, eta, payload in rows:
                try:
                    publications.append(Publication(queue, Envelope.from_bytes(bytes(payload)), eta))
                except InvalidMessage as exc:  # not written by taskq: never sent, never retried
                    log.error("Outbox row %s is not a task message (%s); removed", row_id, exc)
            broker.publish_many(publications)
            conn.execute(f'DELETE FROM "{self.schema}".outbox WHERE id = ANY(%s)', ([r[0] for r in rows],))
        return len(rows)

    def relay(self, broker: Broker, size: int = 500, once: bool = False,
              stop: Callable[[], bool] = lambda: False) -> int:  # fmt: skip
        """Relay until ``stop()`` (or, with ``once``, until the outbox is empty); returns the count."""
        total = 0
        with self._db.connection() as conn:
            conn.execute(f'LISTEN "{self.channel}"')
            while not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (self.channel,)).fetchone()[0]:
                if stop():
                    return 0
                log.info("Another relay holds the outbox of %s; waiting", self.schema)
                time.sleep(1.0)
            try:
                while not stop():
                    moved = self.relay_batch(conn, broker, size)
                    total += moved
                    if moved:
                        log.info("Relayed %d message(s)", moved)
                    if moved < size:
                        if once:
                            break
                        self._sleep(conn, stop)
            finally:
                if not conn.closed:
                    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (self.channel,))
        return total

    def _sleep(self, conn: Any, stop: Callable[[], bool]) -> None:
        """Until a commit fills the outbox (NOTIFY), SAFETY_LOOK passes, or stop() — no query."""
        deadline = time.monotonic() + SAFETY_LOOK
        while not stop() and (remaining := deadline - time.monotonic()) > 0:
            if any(True for _ in conn.notifies(timeout=min(remaining, 0.5), stop_after=1)):
                return

    def close(self) -> None:
        self._db.close()
