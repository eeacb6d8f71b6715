"""The broker's tables, as numbered migrations in the user's schema (docs/postgresql.md).

``taskq_migrations`` records each applied version. ``migrate`` applies the missing ones in
order, each once, under an advisory lock, so several workers starting together on an empty
database create the tables once. A later release appends migrations here and never edits an
applied one; ``taskq db migrate`` (or first use, on an empty schema) applies them.
"""

from __future__ import annotations

import os
from typing import Any

from taskq.errors import BrokerError

# (version, name, SQL with {s} for the schema). Append only.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "messages, dead letters, ready notifications",
        """
CREATE TABLE "{s}".messages (
    id bigserial PRIMARY KEY,
    queue text NOT NULL,
    priority smallint NOT NULL DEFAULT 0,
    eta timestamptz NOT NULL DEFAULT now(),
    payload bytea NOT NULL,
    claim_owner text,
    claim_until timestamptz,
    redeliveries integer NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_next ON "{s}".messages (queue, priority DESC, id);
CREATE TABLE "{s}".dead_letters (
    id bigserial PRIMARY KEY,
    message_id text NOT NULL,
    queue text NOT NULL,
    priority smallint NOT NULL DEFAULT 0,
    reason text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    payload bytea NOT NULL
);
CREATE INDEX dead_letters_queue ON "{s}".dead_letters (queue, id);
CREATE FUNCTION "{s}".notify_ready() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], ready.queue) FROM (SELECT DISTINCT queue FROM new_rows) AS ready;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_ready AFTER INSERT ON "{s}".messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION "{s}".notify_ready('{channel}');
""",
    ),
    (
        2,
        "outbox for transactional enqueue to other brokers",
        """
CREATE TABLE "{s}".outbox (
    id bigserial PRIMARY KEY,
    queue text NOT NULL,
    priority smallint NOT NULL DEFAULT 0,
    eta float8,
    payload bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION "{s}".notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_filled AFTER INSERT ON "{s}".outbox
    FOR EACH STATEMENT EXECUTE FUNCTION "{s}".notify_outbox('{outbox_channel}');
""",
    ),
    (
        3,
        "event channel and remote-control mailbox",
        # Unlogged: events and control messages are worth nothing after a server crash, and
        # skipping the WAL keeps a busy worker's events cheap. notify_outbox is a plain NOTIFY
        # of its argument, so the inserts wake their readers the same way.
        """
CREATE UNLOGGED TABLE "{s}".events (id bigserial PRIMARY KEY, body text NOT NULL);
CREATE TRIGGER events_sent AFTER INSERT ON "{s}".events
    FOR EACH STATEMENT EXECUTE FUNCTION "{s}".notify_outbox('{events_channel}');
CREATE UNLOGGED TABLE "{s}".pidbox (
    id bigserial PRIMARY KEY,
    created timestamptz NOT NULL DEFAULT now(),
    headers text NOT NULL,
    body text NOT NULL
);
CREATE TRIGGER pidbox_sent AFTER INSERT ON "{s}".pidbox
    FOR EACH STATEMENT EXECUTE FUNCTION "{s}".notify_outbox('{pidbox_channel}');
CREATE UNLOGGED TABLE "{s}".pidbox_replies (
    id bigserial PRIMARY KEY,
    ticket text NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    body text NOT NULL
);
CREATE INDEX pidbox_replies_ticket ON "{s}".pidbox_replies (ticket, id);
CREATE TRIGGER pidbox_replied AFTER INSERT ON "{s}".pidbox_replies
    FOR EACH STATEMENT EXECUTE FUNCTION "{s}".notify_outbox('{reply_channel}');
""",
    ),
]
LATEST = MIGRATIONS[-1][0]


def channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel on which inserts (and requeues) announce ready queues."""
    return f"taskq.{schema}"


def outbox_channel(schema: str) -> str:
    """The channel on which inserts into the outbox wake the relay."""
    return f"taskq.{schema}.outbox"


def events_channel(schema: str) -> str:
    """The channel on which published events wake subscribers."""
    return f"taskq.{schema}.events"


def pidbox_channel(schema: str) -> str:
    """The channel on which control requests wake worker nodes."""
    return f"taskq.{schema}.pidbox"


def reply_channel(schema: str) -> str:
    """The channel on which control replies wake the clients waiting for them (at most 63
    bytes with a 50-byte schema name, PostgreSQL's identifier limit)."""
    return f"taskq.{schema}.reply"


def channels(schema: str) -> dict[str, str]:
    """The scripts' channel placeholders and their names for ``schema``."""
    return {
        "{channel}": channel(schema), "{outbox_channel}": outbox_channel(schema),
        "{events_channel}": events_channel(schema), "{pidbox_channel}": pidbox_channel(schema),
        "{reply_channel}": reply_channel(schema),
    }


def current_version(conn: Any, schema: str) -> int | None:
    """The schema's applied version; None when taskq's tables are not there yet."""
    row = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".taskq_migrations',)).fetchone()
    if row[0] is None:
        return None
    row = conn.execute(f'SELECT max(version) FROM "{schema}".taskq_migrations').fetchone()
    return None if row[0] is None else int(row[0])


def migrate(conn: Any, schema: str, migrations: list[tuple[int, str, str]] | None = None) -> list[int]:
    """Apply the missing migrations in one transaction; returns the versions applied."""
    migrations = MIGRATIONS if migrations is None else migrations
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"taskq-migrate:{schema}",))
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".taskq_migrations ('
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in conn.execute(f'SELECT version FROM "{schema}".taskq_migrations').fetchall()}
        newest = max(v for v, _, _ in migrations)
        if done and max(done) > newest:
            raise BrokerError(f"schema {schema!r} is at version {max(done)}, newer than this taskq knows ({newest})")
        for version, name, script in migrations:
            if version in done:
                continue
            for placeholder, name_ in channels(schema).items():
                script = script.replace(placeholder, name_)
            conn.execute(script.replace("{s}", schema))
            conn.execute(f'INSERT INTO "{schema}".taskq_migrations (version, name) VALUES (%s, %s)', (version, name))
            applied_now.append(version)
    return applied_now


def ensure_current(conn: Any, schema: str) -> None:
    """On first use: create the tables in an empty schema; refuse an outdated one clearly."""
    version = current_version(conn, schema)
    if version is None:
        migrate(conn, schema)
    elif version < LATEST:
        raise BrokerError(
            f"schema {schema!r} is at version {version}, this taskq needs {LATEST}: run `taskq db migrate -A APP`"
        )
    elif version > LATEST:
        raise BrokerError(f"schema {schema!r} is at version {version}, newer than this taskq knows ({LATEST})")


class SchemaCheck:
    """``on_open`` for PgConnections: ``ensure_current`` on the first connection of each
    process, so later connections cost no extra query."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._checked_pid = -1

    def __call__(self, conn: Any) -> None:
        if self._checked_pid != os.getpid():
            ensure_current(conn, self.schema)
            self._checked_pid = os.getpid()
