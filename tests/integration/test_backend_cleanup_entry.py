"""Beat's built-in ``celery.backend_cleanup`` entry (Celery's, 4:00 daily) for a backend that
keeps expired results until they are deleted; a worker runs it and the expired row goes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from taskq import TaskQ, states
from taskq.beat.core.beat_schedule import entries_from_app
from taskq.beat.core.schedules import every
from taskq.builtins import BACKEND_CLEANUP
from tests.contract.postgres_factories import drop_schema, unique_schema, with_schema
from tests.integration.workers import WorkerFactory, base_env, wait_until
from tests.servers import require_postgres

pytestmark = pytest.mark.slow


@pytest.fixture(params=["postgresql", "sqlite"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"db+sqlite:///{tmp_path}/results.db"
        return
    url, schema = require_postgres(), unique_schema()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield "db+" + with_schema(url, schema)
    drop_schema(url, schema)


def _backdate(app: TaskQ, task_id: str, days: int) -> None:
    backend = app.backend
    assert backend is not None
    old = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=days)
    with backend.engine.begin() as conn:  # type: ignore[attr-defined]
        table = backend.task  # type: ignore[attr-defined]
        conn.execute(table.update().where(table.c.task_id == task_id).values(date_done=old))


def _row_exists(app: TaskQ, task_id: str) -> bool:
    backend = app.backend
    assert backend is not None
    table = backend.task  # type: ignore[attr-defined]
    with backend.engine.begin() as conn:  # type: ignore[attr-defined]
        return conn.execute(table.select().where(table.c.task_id == task_id)).first() is not None


def test_beat_has_the_daily_cleanup_entry_and_a_worker_running_it_deletes_expired_rows(
    backend_url: str, tmp_path: Path
) -> None:
    broker = f"sqlite:///{tmp_path}/broker.db"
    app = TaskQ("cleanup", broker=broker, backend=backend_url)
    # The entry: Celery's name and time, its message expiring after 12 hours
    entry = next(e for e in entries_from_app(app) if e.id == BACKEND_CLEANUP)
    assert entry.task == BACKEND_CLEANUP and entry.options == {"expires": 43200}
    after = datetime(2030, 1, 1, 5, 0, tzinfo=timezone.utc)
    assert entry.schedule.next_fire(after) == datetime(2030, 1, 2, 4, 0, tzinfo=timezone.utc)
    # Given one result older than result_expires (one day) and one fresh
    expired, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    assert app.backend is not None
    app.backend.store(expired, states.SUCCESS, 1)
    app.backend.store(fresh, states.SUCCESS, 2)
    _backdate(app, expired, days=2)
    # When a worker runs the entry's message
    workers = WorkerFactory(tmp_path, base_env(tmp_path, broker, backend_url))
    try:
        workers.start("-P", "solo")
        assert _row_exists(app, expired)
        app.send_task(entry.task, **entry.options)
        wait_until(lambda: not _row_exists(app, expired), 30, "the expired row to be deleted")
        assert app.AsyncResult(fresh).get(timeout=1) == 2  # the fresh one stays
        assert "celery.backend_cleanup" in workers.workers[0].log and "succeeded" in workers.workers[0].log
    finally:
        workers.close()
        app.close()


def test_no_cleanup_entry_where_the_backend_expires_results_and_a_configured_one_wins(tmp_path: Path) -> None:
    assert not [e for e in entries_from_app(TaskQ("r", broker="redis://127.0.0.1:6379/0")) if e.id == BACKEND_CLEANUP]
    assert not [e for e in entries_from_app(TaskQ("n", broker=f"sqlite:///{tmp_path}/b.db", backend="none"))]
    own = {BACKEND_CLEANUP: {"task": BACKEND_CLEANUP, "schedule": every(hours=1)}}
    app = TaskQ("o", broker=f"sqlite:///{tmp_path}/b.db", beat_schedule=own)
    (entry,) = [e for e in entries_from_app(app) if e.id == BACKEND_CLEANUP]
    assert entry.schedule == every(hours=1) and entry.options == {}
