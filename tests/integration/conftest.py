from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.integration.workers import PROJECT, WorkerFactory, base_env
from tests.servers import require_redis

if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))


def sqlite_broker_env(tmp_path: Path) -> tuple[dict[str, str], Callable[[], None]]:
    return base_env(tmp_path, f"sqlite:///{tmp_path}/broker.db"), lambda: None


def redis_broker_env(tmp_path: Path) -> tuple[dict[str, str], Callable[[], None]]:
    from tests.contract.redis_factories import delete_prefixed

    url = require_redis()
    prefix = f"taskq-it-{uuid.uuid4().hex[:12]}:"
    env = base_env(
        tmp_path,
        url,
        url,
        TASKQ_BROKER_TRANSPORT_OPTIONS=json.dumps({"global_keyprefix": prefix}),
        TASKQ_RESULT_EXPIRES="600",
    )
    return env, lambda: delete_prefixed(url, prefix)


def postgres_broker_env(tmp_path: Path) -> tuple[dict[str, str], Callable[[], None]]:
    from tests.contract.postgres_factories import drop_schema, unique_schema, with_schema
    from tests.servers import require_postgres

    url, schema = require_postgres(), unique_schema()
    # Results in the same database and schema, through the db+postgresql backend.
    env = base_env(tmp_path, with_schema(url, schema), "db+" + with_schema(url, schema))
    return env, lambda: drop_schema(url, schema)


# Add a broker to the worker suite (test_worker.py) = add one entry here.
BROKER_ENVS: dict[str, Callable[[Path], tuple[dict[str, str], Callable[[], None]]]] = {
    "sqlite": sqlite_broker_env,
    "redis": redis_broker_env,
    "postgresql": postgres_broker_env,
}


def activate(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The worker environment for a broker (one of BROKER_ENVS, or "rabbitmq": workers on
    RabbitMQ, results in Redis); this test process's apps use it too."""
    if kind == "rabbitmq":
        yield from rabbitmq_worker_env(tmp_path, monkeypatch)
        return
    env, cleanup = BROKER_ENVS[kind](tmp_path)
    for key, value in env.items():
        if key.startswith("TASKQ_"):
            monkeypatch.setenv(key, value)
    try:
        yield env
    finally:
        cleanup()


def rabbitmq_worker_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url_query: str = ""
) -> Iterator[dict[str, str]]:
    """Workers on RabbitMQ in a fresh vhost (``url_query`` is added to its URL, e.g.
    "?heartbeat=2"), results in Redis (RabbitMQ keeps none); this test process's apps use the
    same settings."""
    from tests.contract.rabbitmq_factories import fresh_vhost
    from tests.integration.workers import base_env
    from tests.servers import require_rabbitmq, require_redis

    amqp, redis = require_rabbitmq(), require_redis()
    with fresh_vhost(amqp) as url:
        env = base_env(tmp_path, url + url_query, redis, TASKQ_RESULT_EXPIRES="600")
        for key, value in env.items():
            if key.startswith("TASKQ_"):
                monkeypatch.setenv(key, value)
        yield env


@pytest.fixture
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """SQLite by default; test_worker.py parametrizes it over every broker."""
    yield from activate("sqlite", tmp_path, monkeypatch)


@pytest.fixture
def workers(tmp_path: Path, broker_env: dict[str, str]) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(tmp_path, broker_env)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def producer(broker_env: dict[str, str]) -> Iterator[TaskQ]:
    """A producer app on the same broker and backend; sends by task name."""
    app = TaskQ("producer", broker=os.environ["TASKQ_BROKER_URL"])
    yield app
    app.close()


def example_tasks_app() -> TaskQ:
    """The worker's own task module's app, configured from this test's variables: the module
    may have been imported under an earlier test's (its app reads the environment once)."""
    import example_tasks

    from taskq.config import Settings

    example_tasks.app.close()
    example_tasks.app.conf = Settings.from_env()
    return example_tasks.app
