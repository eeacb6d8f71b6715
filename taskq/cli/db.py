"""``taskq db init`` and ``taskq db migrate``: the PostgreSQL broker's tables, by version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from taskq.app import TaskQ
from taskq.cli.common import CommandError, app_option, load_app, run_guarded
from taskq.config import url_scheme
from taskq.display import redact


@click.group()
def db() -> None:
    """Create or upgrade taskq's tables: a postgresql:// broker's or the outbox's (in their
    ?schema=), and a db+ result backend's."""


def _schema_url(app: TaskQ) -> str | None:
    """The PostgreSQL URL whose schema holds taskq's versioned tables, if any."""
    if url_scheme(app.conf.broker_url) in ("postgresql", "postgres"):
        return app.conf.broker_url
    return app.conf.outbox_url  # the outbox's tables, for a Redis or RabbitMQ broker


def _with_schema(url: str, action: Callable[[Any, str], str]) -> str:
    def run() -> str:
        from taskq.brokers.postgres.connection import PgConnections, split_url
        from taskq.errors import BrokerError

        conninfo, schema = split_url(url)
        connections = PgConnections(conninfo, BrokerError, f"postgresql ({schema})")
        try:
            with connections.connection() as conn:
                return action(conn, schema)
        finally:
            connections.close()

    result: str = run_guarded(run)
    return result


def _result_tables(app: TaskQ) -> str | None:
    """Create a db+ result backend's tables (Celery's layout; they have no versions)."""
    backend_url = app.conf.result_backend_url
    if not backend_url or url_scheme(backend_url) != "db":
        return None

    def create() -> str:
        from taskq.backends.database import DatabaseBackend

        backend = app.backend
        if not isinstance(backend, DatabaseBackend):  # the db scheme always maps to it
            raise CommandError(f"{redact(backend_url)!r} is not a database result backend")
        backend.engine  # noqa: B018 - first use creates the tables (and, on PostgreSQL, the trigger)
        app.close()
        return f"result backend {backend.dialect}: celery_taskmeta, celery_tasksetmeta and taskq_counters ready"

    result: str = run_guarded(create)
    return result


def _init(conn: Any, schema: str) -> str:
    from taskq.brokers.postgres.migrations import LATEST, current_version, migrate

    version = current_version(conn, schema)
    if version is None:
        migrate(conn, schema)
        return f"schema {schema!r}: tables created at version {LATEST}"
    if version < LATEST:
        raise CommandError(f"schema {schema!r} is at version {version} (latest {LATEST}): run `taskq db migrate`")
    return f"schema {schema!r}: already at version {version}"


def _migrate(conn: Any, schema: str) -> str:
    from taskq.brokers.postgres.migrations import LATEST, migrate

    applied = migrate(conn, schema)
    if not applied:
        return f"schema {schema!r}: up to date at version {LATEST}"
    return f"schema {schema!r}: applied version(s) {', '.join(map(str, applied))}; now at version {LATEST}"


@db.command()
@app_option
def init(app_spec: str | None) -> None:
    """Create the tables in the broker URL's (or outbox_url's) schema if it has none, and a
    db+ result backend's tables."""
    app = run_guarded(lambda: load_app(app_spec))
    url = _schema_url(app)
    done = [_with_schema(url, _init) if url else None, _result_tables(app)]
    if done == [None, None]:
        raise CommandError("nothing to create: no postgresql:// broker, outbox_url or db+ result backend")
    for line in done:
        if line:
            click.echo(line)


@db.command()
@app_option
def migrate(app_spec: str | None) -> None:
    """Apply the migrations the schema lacks, in order, each once."""
    app = run_guarded(lambda: load_app(app_spec))
    url = _schema_url(app)
    if url is None:
        scheme = url_scheme(app.conf.broker_url)
        raise CommandError(f"taskq db needs a postgresql:// broker or an outbox_url, and this app's broker is {scheme}://")
    click.echo(_with_schema(url, _migrate))
