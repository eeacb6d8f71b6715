"""The broker's SQL, built once per schema. Every statement is one round trip.

Times are the server's (``now()``), so claims and delays mean the same to every host
whatever their clocks; only an ``eta`` comes from the producer, as unix time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from taskq.brokers.base import Publication
from taskq.brokers.postgres.migrations import channel

CHUNK = 5000  # messages per INSERT statement in publish_many / delay_many


@dataclass(frozen=True)
class Statements:
    schema: str

    @property
    def channel(self) -> str:
        return channel(self.schema)

    @property
    def insert(self) -> str:
        """Many messages in one statement: one array per column, unnested on the server."""
        return (
            f'INSERT INTO "{self.schema}".messages (queue, priority, eta, payload)'
            " SELECT q, p, coalesce(to_timestamp(e), now()), b"
            " FROM unnest(%s::text[], %s::smallint[], %s::float8[], %s::bytea[]) AS m(q, p, e, b)"
        )

    @property
    def insert_one(self) -> str:
        return (
            f'INSERT INTO "{self.schema}".messages (queue, priority, eta, payload)'
            " VALUES (%s, %s, coalesce(to_timestamp(%s), now()), %s)"
        )

    def claim(self, queue_count: int) -> str:
        """Claim ready messages, 9 first then oldest; when none, say how long until one may be.

        Each queue is its own branch (``queue = $n``), so the index on (queue, priority DESC,
        id) hands rows over in order and the scan stops at the limit; ``queue = ANY(...)``
        would read and sort the whole backlog on every claim. SKIP LOCKED lets concurrent
        fetchers take different rows without waiting. The last row (id NULL) carries the wait
        in seconds until the earliest delayed message or expiring claim of these queues, so
        an idle fetch sleeps until then (or until a NOTIFY)."""
        s = self.schema
        ready = "eta <= now() AND (claim_until IS NULL OR claim_until < now())"
        branches = " UNION ALL ".join(  # FOR UPDATE is allowed in a FROM subquery, not in a UNION arm
            f'SELECT * FROM (SELECT id, priority FROM "{s}".messages WHERE queue = %(q{i})s AND {ready}'
            f" ORDER BY priority DESC, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS q{i}"
            for i in range(queue_count)
        )
        return f"""
WITH picked AS (
    SELECT id FROM ({branches}) AS ready ORDER BY priority DESC, id LIMIT %(limit)s
), claimed AS (
    UPDATE "{s}".messages m
    SET claim_owner = %(owner)s, claim_until = now() + make_interval(secs => %(hold)s),
        redeliveries = m.redeliveries + (m.claim_until IS NOT NULL)::int
    FROM picked WHERE m.id = picked.id
    RETURNING m.id, m.queue, m.priority, m.payload, m.redeliveries
)
SELECT id, queue, priority, payload, redeliveries, NULL::float8 FROM claimed
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL,
       extract(epoch FROM min(greatest(eta, coalesce(claim_until, eta))) - now())::float8
FROM "{s}".messages WHERE queue = ANY(%(queues)s) AND NOT EXISTS (SELECT 1 FROM claimed)"""

    @property
    def ack(self) -> str:
        return f'DELETE FROM "{self.schema}".messages WHERE id = ANY(%s) AND claim_owner = %s'

    @property
    def extend(self) -> str:
        return (
            f'UPDATE "{self.schema}".messages SET claim_until = now() + make_interval(secs => %s)'
            " WHERE id = ANY(%s) AND claim_owner = %s"
        )

    @property
    def requeue(self) -> str:
        """Release claims and wake fetchers of those queues, in one statement."""
        return f"""
WITH released AS (
    UPDATE "{self.schema}".messages SET claim_owner = NULL, claim_until = NULL
    WHERE id = ANY(%s) AND claim_owner = %s RETURNING queue
)
SELECT pg_notify(%s, queue) FROM (SELECT DISTINCT queue FROM released) AS r"""

    @property
    def extend_owner(self) -> str:
        """Another process's claims on these queues (the index's leading queue column
        narrows the scan; no index on the owner: it would cost every claim)."""
        return (
            f'UPDATE "{self.schema}".messages SET claim_until = now() + make_interval(secs => %s)'
            " WHERE queue = ANY(%s) AND claim_owner = %s"
        )

    @property
    def abandon(self) -> str:
        """Claims that lapse now, as a dead worker's would: an owner nobody extends and an
        expiry in the past, so the next claim counts the redelivery; fetchers of those
        queues are woken (they would otherwise sleep until the old expiry)."""
        return f"""
WITH lapsed AS (
    UPDATE "{self.schema}".messages SET claim_owner = '', claim_until = '-infinity'
    WHERE id = ANY(%s) AND claim_owner = %s RETURNING queue
)
SELECT pg_notify(%s, queue) FROM (SELECT DISTINCT queue FROM lapsed) AS r"""

    @property
    def dead_letter(self) -> str:
        s = self.schema
        return f"""
WITH gone AS (
    DELETE FROM "{s}".messages WHERE id = %s AND claim_owner = %s RETURNING queue, priority, payload
)
INSERT INTO "{s}".dead_letters (message_id, queue, priority, reason, payload)
SELECT %s, queue, priority, %s, payload FROM gone"""


def insert_params(items: Sequence[Publication]) -> tuple[list[str], list[int], list[float | None], list[bytes]]:
    return (
        [p.queue for p in items],
        [p.envelope.priority for p in items],
        [p.eta for p in items],
        [p.envelope.to_bytes() for p in items],
    )


class InsertStatements(Protocol):
    """The two INSERTs insert_messages needs (the broker's messages table, or the outbox)."""

    @property
    def insert_one(self) -> str: ...

    @property
    def insert(self) -> str: ...


def insert_messages(
    execute: Callable[[str, Sequence[Any]], Any], statements: InsertStatements, items: Sequence[Publication]
) -> None:
    """Enqueue through ``execute`` (a connection's), inside whatever transaction it has open:
    one INSERT for one message, one INSERT per CHUNK messages. The commit wakes workers (the
    insert trigger's NOTIFY is delivered at commit, and never after a rollback)."""
    if len(items) == 1:
        p = items[0]
        execute(statements.insert_one, (p.queue, p.envelope.priority, p.eta, p.envelope.to_bytes()))
        return
    for start in range(0, len(items), CHUNK):
        execute(statements.insert, insert_params(items[start : start + CHUNK]))
