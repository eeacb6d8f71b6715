"""The PostgreSQL broker: rows claimed with FOR UPDATE SKIP LOCKED, fetchers woken by NOTIFY.

A fetch claims rows (owner, claim_until) in one statement; ack deletes them. A claim its
owner stops extending expires after the recovery time and the row is claimed again, with
``redeliveries`` counted. Delayed messages are rows whose ``eta`` lies ahead.

Idle workers do not poll. The insert trigger NOTIFYs the queue names at commit; a fetcher
LISTENs on its own connection and, after a claim that found nothing, sleeps on the socket
until a notification for one of its queues, the earliest moment a delayed message or an
expiring claim becomes ready (the claim statement reports it), or one recovery period as a
safety net (a notification lost with a connection) — whichever comes first. Fetch calls in
between (the worker fetches with a short timeout) cost no query at all.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from taskq.brokers.base import DeadLetter, Delivery, Publication, decode_delivery
from taskq.brokers.postgres.callers import caller_execute, sqlalchemy_errors
from taskq.brokers.postgres.connection import PgConnections, driver_error, one_line, split_url
from taskq.brokers.postgres.migrations import SchemaCheck
from taskq.brokers.postgres.statements import CHUNK, Statements, insert_messages
from taskq.config import Settings
from taskq.envelope import Envelope
from taskq.errors import BrokerError

MIN_PAUSE = 0.005  # a due time already past (rows locked by a concurrent claim): look again soon


class PostgresBroker:
    counts_redeliveries = True

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.url = url
        self.recovery_time = settings.recovery_time
        self.conninfo, self.schema = split_url(url)
        self.sql = Statements(self.schema)
        self._db = PgConnections(self.conninfo, BrokerError, f"postgresql broker ({self.schema})", self._on_open)
        self._schema_check = SchemaCheck(self.schema)
        self._owner_pid = -1
        self._owner = ""
        self._local = threading.local()  # per fetching thread: its LISTEN and when to look again
        self._claims: dict[int, str] = {}  # claim statement by number of queues

    @property
    def owner(self) -> str:
        """Claim owner id, new after a fork so parent and child never share claims."""
        if self._owner_pid != os.getpid():
            self._owner, self._owner_pid = uuid.uuid4().hex, os.getpid()
        return self._owner

    def _on_open(self, conn: Any) -> None:
        # A claim must walk the (queue, priority DESC, id) index in order and stop at its
        # limit. On a new or just-refilled table the planner's row estimate is tiny, and it
        # would rather read and sort the whole backlog on every claim; on the broker's own
        # sessions (never the user's) sorting is the last resort. That makes plans look
        # costly, which would start JIT compilation (half a second per claim): never here.
        conn.execute("SET enable_sort = off; SET jit = off")
        self._schema_check(conn)  # once per process: the tables exist and are current

    def connection(self) -> Any:
        """This thread's connection (the tables exist), e.g. for ``taskq db``."""
        return self._db.get()

    # -- producing ------------------------------------------------------------------------
    def publish(self, queue: str, envelope: Envelope, eta: float | None = None) -> None:
        self.publish_many([Publication(queue, envelope, eta)])

    def publish_many(self, items: Sequence[Publication]) -> None:
        if not items:
            return

        def insert(conn: Any) -> None:
            if len(items) <= CHUNK:  # one statement: autocommit makes it its own transaction
                insert_messages(conn.execute, self.sql, items)
                return
            with conn.transaction():
                insert_messages(conn.execute, self.sql, items)

        self._db.run(insert)

    def enqueue_in(self, conn: Any, items: Sequence[Publication]) -> None:
        """Write messages on the caller's connection, inside the caller's transaction: one
        INSERT for one message, one per chunk for many; nothing else on that connection."""
        execute = caller_execute(conn, self.conninfo)
        if items:
            self.prepare()
            try:
                insert_messages(execute, self.sql, items)
            except (driver_error(), *sqlalchemy_errors()) as exc:
                raise BrokerError(f"enqueue in your transaction: {one_line(exc)}") from None

    def prepare(self) -> None:
        """Open a connection once, which creates the tables when the schema is empty."""
        with self._db.connection():
            pass

    # -- consuming ------------------------------------------------------------------------
    def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        key = frozenset(queues)
        with self._db.connection() as conn:
            look_at = self._listening(conn)
            while True:
                if time.monotonic() >= look_at.get(key, 0.0):
                    taken, wait = self._claim(conn, queues, max_count)
                    if taken:
                        return taken
                    look_at[key] = time.monotonic() + max(MIN_PAUSE, min(wait, self.recovery_time))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                pause = max(0.0, min(remaining, look_at[key] - time.monotonic()))
                for note in conn.notifies(timeout=pause, stop_after=1):
                    for known in list(look_at):
                        if note.payload in known:
                            look_at[known] = 0.0

    def _listening(self, conn: Any) -> dict[frozenset[str], float]:
        """This thread's 'look again at' times; LISTEN first on a new connection, so no
        commit between our LISTEN and our first claim goes unnoticed."""
        if getattr(self._local, "conn", None) is not conn:
            # A fetching connection commits its claims and the messages its tasks send without
            # waiting for the WAL flush; settling a claim (_settle) waits. A crash loses at
            # most a suffix of the commits, in WAL order: a lost claim makes the message free
            # again, and a settle on disk brings every earlier commit with it. A lost settle
            # would leave its claim to the owner for good (keeper.py keeps a live worker's
            # claims alive), so settles never are. Producers' connections commit synchronously.
            conn.execute(f'LISTEN "{self.sql.channel}"; SET synchronous_commit = off')
            self._local.conn, self._local.look_at = conn, {}
        look_at: dict[frozenset[str], float] = self._local.look_at
        return look_at

    def _claim(self, conn: Any, queues: Sequence[str], max_count: int) -> tuple[list[Delivery], float]:
        params = {"queues": list(queues), "limit": max_count, "owner": self.owner, "hold": self.recovery_time}
        params.update({f"q{i}": queue for i, queue in enumerate(queues)})
        rows = conn.execute(self._claim_sql(len(queues)), params).fetchall()
        claimed = sorted((r for r in rows if r[0] is not None), key=lambda r: (-r[2], r[0]))
        waits = [r[5] for r in rows if r[0] is None and r[5] is not None]
        return [decode_delivery(bytes(r[3]), r[1], r[0], r[4]) for r in claimed], (waits[0] if waits else math.inf)

    def _claim_sql(self, queue_count: int) -> str:
        sql = self._claims.get(queue_count)
        if sql is None:
            sql = self._claims[queue_count] = self.sql.claim(queue_count)
        return sql

    def _by_owner(
        self, sql: str, deliveries: Sequence[Delivery], *before: object, after: tuple[object, ...] = ()
    ) -> None:
        if deliveries:
            params = (*before, [d.tag for d in deliveries], self.owner, *after)
            self._db.run(lambda conn: _settle(conn, sql, params))

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._by_owner(self.sql.ack, deliveries)

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        self._by_owner(self.sql.requeue, deliveries, after=(self.sql.channel,))

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        self._by_owner(self.sql.extend, deliveries, self.recovery_time)

    # -- claims kept from another process (ClaimsByOwner) ------------------------------------
    @property
    def claim_owner(self) -> str:
        return self.owner

    def extend_owner(self, owner: str, queues: Sequence[str]) -> int:
        """Extend every claim ``owner`` (another process) holds on these queues: the prefork
        supervisor and the keeper process call this for a worker whose task holds the GIL."""
        params = (self.recovery_time, list(queues), owner)
        return self._db.run(lambda conn: int(conn.execute(self.sql.extend_owner, params).rowcount))

    def abandon(self, deliveries: Sequence[Delivery]) -> None:
        self._by_owner(self.sql.abandon, deliveries, after=(self.sql.channel,))

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        message_id = (delivery.envelope.id if delivery.envelope else "") or f"undecodable-{delivery.tag}"
        self._db.run(lambda conn: _settle(conn, self.sql.dead_letter, (delivery.tag, self.owner, message_id, reason)))

    # -- inspection and dead letters ------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._db.run(lambda conn: list(conn.execute(sql.replace("{s}", self.schema), params).fetchall()))

    def _count(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._db.run(lambda conn: int(conn.execute(sql.replace("{s}", self.schema), params).rowcount))

    def queue_length(self, queue: str) -> int:
        return int(self._rows('SELECT count(*) FROM "{s}".messages WHERE queue = %s', (queue,))[0][0])

    def queues(self) -> list[str]:
        rows = self._rows('SELECT queue FROM "{s}".messages UNION SELECT queue FROM "{s}".dead_letters ORDER BY 1')
        return [r[0] for r in rows]

    def purge(self, queue: str) -> int:
        return self._count(
            'DELETE FROM "{s}".messages WHERE queue = %s AND (claim_until IS NULL OR claim_until < now())', (queue,)
        )

    @staticmethod
    def _dead_filter(queue: str | None, ids: Sequence[str]) -> tuple[str, list[object]]:
        clauses: list[str] = ["true"]
        params: list[object] = []
        if queue is not None:
            clauses.append("queue = %s")
            params.append(queue)
        if ids:
            clauses.append("message_id = ANY(%s)")
            params.append(list(ids))
        return " AND ".join(clauses), params

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        where, params = self._dead_filter(queue, ())
        rows = self._rows(
            'SELECT message_id, queue, reason, extract(epoch FROM failed_at)::float8, payload FROM "{s}".dead_letters'
            f" WHERE {where} ORDER BY id LIMIT %s",
            (*params, limit),
        )
        return [DeadLetter(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

    def dead_letter_count(self, queue: str) -> int:
        return int(self._rows('SELECT count(*) FROM "{s}".dead_letters WHERE queue = %s', (queue,))[0][0])

    def requeue_dead_letters(self, queue: str | None = None, ids: Sequence[str] = ()) -> int:
        where, params = self._dead_filter(queue, ids)
        return self._count(
            'WITH back AS (DELETE FROM "{s}".dead_letters WHERE ' + where + " RETURNING id, queue, priority, payload)"
            ' INSERT INTO "{s}".messages (queue, priority, payload)'
            " SELECT queue, priority, payload FROM back ORDER BY id",
            params,
        )

    def purge_dead_letters(self, queue: str | None = None) -> int:
        where, params = self._dead_filter(queue, ())
        return self._count(f'DELETE FROM "{{s}}".dead_letters WHERE {where}', params)

    def close(self) -> None:
        self._db.close()
        self._local = threading.local()


def _settle(conn: Any, sql: str, params: Sequence[object]) -> None:
    """Ack, return, give up or dead-letter claims, waiting for the WAL flush even on a fetching
    connection (see ``_listening``)."""
    with conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = on")
        conn.execute(sql, params)
