"""PostgreSQL wake-ups for the database result backend: a trigger NOTIFYs a task id when its
row in ``celery_taskmeta`` becomes ready, and a waiting ``get()`` LISTENs meanwhile.

The trigger fires for every writer, Celery's DatabaseBackend included, so taskq waits on
Celery's results without polling. A waiter LISTENs only while it waits (UNLISTEN after): a
session that listens but stops reading would hold back the server's notification queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskq.brokers.postgres.connection import PgConnections
from taskq.errors import BackendError

READY = "('SUCCESS', 'FAILURE', 'REVOKED')"


class Notes:
    """The notifications of one wait, on this thread's listening connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def wait_for(self, task_id: str, timeout: float) -> None:
        """Return when ``task_id``'s row may be ready, or after ``timeout`` seconds."""
        import time

        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            for note in self.conn.notifies(timeout=remaining, stop_after=1):
                if note.payload == task_id:
                    return


class ResultListener:
    def __init__(self, engine_url: str, schema: str | None) -> None:
        import sqlalchemy as sa

        self.schema = schema
        self.channel = f"taskq.results.{schema or 'public'}"
        conninfo = sa.engine.make_url(engine_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._db = PgConnections(conninfo, BackendError, "postgresql result backend")

    def _qualified(self, name: str) -> str:
        return f'"{self.schema}".{name}' if self.schema else name

    def create_tables(self, engine: Any, metadata: Any) -> None:
        """Tables and trigger, once, even when several processes start together."""
        import sqlalchemy as sa

        table, function = self._qualified("celery_taskmeta"), self._qualified("taskq_result_ready")
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"taskq-results:{self.schema}"})
            if self.schema:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            metadata.create_all(conn)
            present = conn.execute(
                sa.text("SELECT 1 FROM pg_trigger WHERE tgname = 'taskq_result_ready' AND tgrelid = to_regclass(:t)"),
                {"t": table},
            ).first()
            if present is None:
                conn.execute(sa.text(
                    f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$"
                    " BEGIN PERFORM pg_notify(TG_ARGV[0], NEW.task_id); RETURN NULL; END $$"
                ))
                conn.execute(sa.text(
                    f"CREATE TRIGGER taskq_result_ready AFTER INSERT OR UPDATE ON {table} FOR EACH ROW"
                    f" WHEN (NEW.status IN {READY}) EXECUTE FUNCTION {function}('{self.channel}')"
                ))

    @contextmanager
    def listening(self) -> Iterator[Notes]:
        with self._db.connection() as conn:
            conn.execute(f'LISTEN "{self.channel}"')
            try:
                yield Notes(conn)
            finally:
                if not conn.closed:
                    conn.execute(f'UNLISTEN "{self.channel}"')

    def close(self) -> None:
        self._db.close()
