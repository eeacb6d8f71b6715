"""PostgreSQL test support: each broker gets a schema of its own, dropped afterwards, so
parallel tests and other helpers on the same server never see each other's rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from taskq.brokers.base import Broker
from taskq.config import Settings
from tests.contract.conftest import BROKERS
from tests.servers import require_postgres


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
