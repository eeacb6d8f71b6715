"""``taskq db init`` and ``taskq db migrate``: the PostgreSQL broker's tables, by version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from taskq.cli.common import CommandError, app_option, load_app, run_guarded
from taskq.config import url_scheme


@click.group()
def db() -> None:
    """Create or upgrade the tables of a postgresql:// broker, or of the outbox (outbox_url)."""


def _with_schema(app_spec: str, action: Callable[[Any, str], str]) -> None:
    app = run_guarded(lambda: load_app(app_spec))
    url = app.conf.broker_url
    if url_scheme(url) not in ("postgresql", "postgres"):
        if not app.conf.outbox_url:
            raise CommandError(
                f"taskq db needs a postgresql:// broker or an outbox_url, and this app's broker is {url_scheme(url)}://"
            )
        url = app.conf.outbox_url  # the outbox's tables, for a Redis or RabbitMQ broker

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

    click.echo(run_guarded(run))


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
def init(app_spec: str) -> None:
    """Create the tables in the broker URL's schema (default taskq) if it has none."""
    _with_schema(app_spec, _init)


@db.command()
@app_option
def migrate(app_spec: str) -> None:
    """Apply the migrations the schema lacks, in order, each once."""
    _with_schema(app_spec, _migrate)
