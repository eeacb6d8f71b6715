"""Celery's own DatabaseBackend and taskq's db+ backend share celery_taskmeta, both ways, on
PostgreSQL, MariaDB and SQLite; on PostgreSQL taskq's get() wakes on Celery's write (NOTIFY)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from taskq import TaskQ, states
from taskq.worker.runner import exception_meta
from tests.contract.postgres_factories import drop_schema, mariadb_database, unique_schema, with_schema
from tests.servers import require_postgres

celery = pytest.importorskip("celery")
pytestmark = pytest.mark.slow


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, dict[str, object]]]:
    """(taskq's backend URL, Celery's, Celery's extra settings) for one fresh set of tables."""
    if request.param == "postgresql":
        url, schema = require_postgres(), unique_schema()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')  # Celery does not create schemas; its users do
        schemas = {"task": schema, "group": schema}
        yield "db+" + with_schema(url, schema), "db+" + url.replace("postgresql://", "postgresql+psycopg://", 1), {
            "database_table_schemas": schemas
        }
        drop_schema(url, schema)
    elif request.param == "mariadb":
        with mariadb_database() as (url, name):
            server = url.rsplit("/", 1)[0]
            yield f"db+{server}/{name}", f"db+{server.replace('mysql://', 'mysql+pymysql://', 1)}/{name}", {}
    else:
        yield f"db+sqlite:///{tmp_path}/results.db", f"db+sqlite:///{tmp_path}/results.db", {}


@pytest.fixture
def apps(urls: tuple[str, str, dict[str, object]]) -> Iterator[tuple[TaskQ, celery.Celery]]:
    taskq_url, celery_url, conf = urls
    tq = TaskQ("interop", broker="memory://", backend=taskq_url)
    cel = celery.Celery("interop", backend=celery_url)
    cel.conf.update(conf)
    yield tq, cel
    tq.close()
    cel.backend.ResultSession().get_bind().dispose()


def test_celery_reads_taskq_results(apps: tuple[TaskQ, celery.Celery]) -> None:
    tq, cel = apps
    assert tq.backend is not None
    ok, failed = uuid.uuid4().hex, uuid.uuid4().hex
    tq.backend.store(ok, states.SUCCESS, {"total": [1, 2.5, "é"]})
    tq.backend.store(failed, states.FAILURE, exception_meta(ValueError("bad input")), "Traceback: ...")
    assert cel.AsyncResult(ok).get(timeout=5) == {"total": [1, 2.5, "é"]}
    bad = cel.AsyncResult(failed)
    assert bad.state == "FAILURE" and bad.traceback == "Traceback: ..."
    with pytest.raises(ValueError, match="bad input"):
        bad.get(timeout=5)


def test_taskq_reads_celery_results(apps: tuple[TaskQ, celery.Celery]) -> None:
    tq, cel = apps
    ok, failed = uuid.uuid4().hex, uuid.uuid4().hex
    cel.backend.mark_as_done(ok, {"n": 42})
    cel.backend.mark_as_failure(failed, KeyError("missing"), traceback="Traceback: celery")
    assert tq.AsyncResult(ok).get(timeout=5) == {"n": 42}
    assert tq.AsyncResult(ok).successful()
    with pytest.raises(Exception, match="missing"):
        tq.AsyncResult(failed).get(timeout=5)
    assert tq.AsyncResult(failed).traceback == "Traceback: celery"


def test_taskq_wakes_on_a_result_celery_writes(apps: tuple[TaskQ, celery.Celery]) -> None:
    tq, cel = apps
    task_id = uuid.uuid4().hex
    cel.backend.mark_as_started(task_id)  # Celery creates its tables first here
    timer = threading.Timer(0.5, cel.backend.mark_as_done, (task_id, "late"))
    start = time.monotonic()
    timer.start()
    assert tq.AsyncResult(task_id).get(timeout=10) == "late"
    assert time.monotonic() - start < 2.0  # PostgreSQL: the NOTIFY; MariaDB/SQLite: the 1 s backoff bound
    timer.join()


def test_taskq_results_cleanup_removes_expired_results(
    urls: tuple[str, str, dict[str, object]], tmp_path: Path
) -> None:
    import sqlalchemy as sa

    from taskq.backends.database import DatabaseBackend
    from tests.integration.test_cli import taskq
    from tests.integration.workers import base_env

    # Given a result written two hours ago and a fresh one, with results kept for one hour
    backend_url = urls[0]
    tq = TaskQ("interop", broker="memory://", backend=backend_url, result_expires=3600.0)
    backend = tq.backend
    assert isinstance(backend, DatabaseBackend)
    old, new = uuid.uuid4().hex, uuid.uuid4().hex
    backend.store(old, states.SUCCESS, 1)
    backend.store(new, states.SUCCESS, 2)
    two_hours_ago = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=2)
    with backend.engine.begin() as conn:
        conn.execute(sa.update(backend.task).where(backend.task.c.task_id == old).values(date_done=two_hours_ago))
    # When the command runs
    env = base_env(tmp_path, "memory://", backend_url, TASKQ_RESULT_EXPIRES="3600")
    done = taskq("results", "cleanup", "-A", "example_tasks:app", env=env)
    # Then the old row is gone from the table (not merely hidden) and the fresh one stays
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "removed 1 expired result(s)"
    with backend.engine.begin() as conn:
        left = conn.execute(sa.select(backend.task.c.task_id)).scalars().all()
    assert old not in left and new in left
    tq.close()


def test_a_result_that_is_not_json_is_one_clear_error(urls: tuple[str, str, dict[str, object]]) -> None:
    from taskq.errors import InvalidResult

    taskq_url, celery_url, conf = urls
    cel = celery.Celery("interop", backend=celery_url)
    cel.conf.update(conf, result_serializer="pickle", accept_content=["pickle", "json"])
    task_id = uuid.uuid4().hex
    cel.backend.mark_as_done(task_id, {"n": 1})
    tq = TaskQ("interop", broker="memory://", backend=taskq_url)
    with pytest.raises(InvalidResult, match=f"result of task {task_id} is not a JSON document"):
        tq.AsyncResult(task_id).get(timeout=5)
    tq.close()
