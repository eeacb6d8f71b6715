"""PostgreSQL and MariaDB test support: each broker or db+ backend gets a schema (PostgreSQL)
or database (MariaDB) of its own, dropped afterwards, so parallel tests and other helpers
on the same servers never see each other's rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pymysql

from taskq.backends.base import ResultBackend
from taskq.brokers.base import Broker
from taskq.config import Settings
from tests.contract.conftest import BACKENDS, BROKERS
from tests.servers import require_mariadb, require_postgres


def unique_schema() -> str:
    return f"taskq_test_{uuid.uuid4().hex[:12]}"


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def postgres_broker(tmp_path: Path, settings: Settings) -> tuple[Broker, Callable[[], None]]:
    from taskq.brokers.postgres import PostgresBroker

    url, schema = require_postgres(), unique_schema()
    broker = PostgresBroker(with_schema(url, schema), settings)

    def cleanup() -> None:
        broker.close()
        drop_schema(url, schema)

    return broker, cleanup


BROKERS["postgresql"] = postgres_broker


def postgres_db_backend(tmp_path: Path, settings: Settings) -> tuple[ResultBackend, Callable[[], None]]:
    from taskq.backends.database import DatabaseBackend

    url, schema = require_postgres(), unique_schema()
    backend = DatabaseBackend("db+" + with_schema(url, schema), settings)

    def cleanup() -> None:
        backend.close()
        drop_schema(url, schema)

    return backend, cleanup


@contextmanager
def mariadb_database() -> Iterator[tuple[str, str]]:
    """A MariaDB database of its own (the server URL, its name), dropped afterwards."""
    url, name = require_mariadb(), unique_schema()
    parts = urlsplit(url)
    connect = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306, "user": parts.username or "root",
               "password": parts.password or ""}
    with pymysql.connect(**connect) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    try:
        yield url, name
    finally:
        with pymysql.connect(**connect) as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def mariadb_db_backend(tmp_path: Path, settings: Settings) -> tuple[ResultBackend, Callable[[], None]]:
    from taskq.backends.database import DatabaseBackend

    database = mariadb_database()
    url, name = database.__enter__()
    backend = DatabaseBackend(f"db+{url.rsplit('/', 1)[0]}/{name}", settings)

    def cleanup() -> None:
        backend.close()
        database.__exit__(None, None, None)

    return backend, cleanup


def sqlite_db_backend(tmp_path: Path, settings: Settings) -> tuple[ResultBackend, Callable[[], None]]:
    from taskq.backends.database import DatabaseBackend

    backend = DatabaseBackend(f"db+sqlite:///{tmp_path}/celery-results.db", settings)
    return backend, backend.close


BACKENDS["db+postgresql"] = postgres_db_backend
BACKENDS["db+mysql"] = mariadb_db_backend
BACKENDS["db+sqlite"] = sqlite_db_backend
