"""``taskq worker --outbox``: the worker relays the outbox itself (no ``taskq outbox relay``),
on Redis with the outbox in PostgreSQL, in a prefork slot and in a threads pool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from taskq import TaskQ
from tests.contract.postgres_factories import drop_schema, unique_schema, with_schema
from tests.contract.redis_factories import delete_prefixed, unique_prefix
from tests.integration.workers import WorkerFactory, base_env
from tests.servers import require_postgres, require_redis

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TaskQ, WorkerFactory, str]]:
    """A producer app with its outbox in PostgreSQL, workers with the same settings, and the
    user's database URL."""
    pg_url, schema = require_postgres(), unique_schema()
    redis_url, prefix = require_redis(), unique_prefix()
    options = {"global_keyprefix": prefix}
    outbox = with_schema(pg_url, schema)
    app = TaskQ("producer", broker=redis_url, backend=redis_url, broker_transport_options=options, outbox_url=outbox)
    env = base_env(tmp_path, redis_url, redis_url, TASKQ_BROKER_TRANSPORT_OPTIONS=json.dumps(options),
                   TASKQ_OUTBOX_URL=outbox)  # fmt: skip
    workers = WorkerFactory(tmp_path, env)
    try:
        yield app, workers, pg_url
    finally:
        workers.close()
        app.close()
        drop_schema(pg_url, schema)
        delete_prefixed(redis_url, prefix)


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_committed_transactional_task_is_relayed_and_run_by_the_worker(
    setup: tuple[TaskQ, WorkerFactory, str], pool: str
) -> None:
    app, workers, pg_url = setup
    worker = workers.start("-P", pool, "-c", "1", "--outbox")
    with psycopg.connect(pg_url) as conn:
        with pytest.raises(RuntimeError), app.transaction(conn):
            rolled_back = app.send_task("example_tasks.add", (0, 0))
            raise RuntimeError("rolled back")
        with app.transaction(conn):
            committed = app.send_task("example_tasks.add", (20, 22))
    assert committed.get(timeout=30) == 42  # no `taskq outbox relay` runs: the worker relayed it
    assert rolled_back.state == "PENDING"
    assert worker.stop() == 0  # the relay stops with the worker
    assert "Outbox relay" not in worker.log  # it never died and restarted


def test_outbox_without_outbox_url_is_one_line_exit_2(setup: tuple[TaskQ, WorkerFactory, str]) -> None:
    _, workers, _ = setup
    worker = workers.start("--outbox", ready=False, TASKQ_OUTBOX_URL="")
    assert worker.proc.wait(30) == 2
    assert "no outbox_url" in worker.log and "Traceback" not in worker.log
