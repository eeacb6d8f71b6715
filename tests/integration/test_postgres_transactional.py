"""Tasks enqueued in the user's own PostgreSQL transaction: rolled back, they never run;
committed, they run (even when the producer dies right after COMMIT); each costs one INSERT,
and delay_many one statement per chunk, counted on the wire (libpq's protocol trace)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.pq import Trace

from taskq import TaskQ
from taskq.brokers.postgres import statements
from taskq.errors import ConfigurationError
from tests.integration.conftest import activate, example_tasks_app
from tests.integration.workers import PROJECT, WorkerFactory, wait_until
from tests.servers import require_postgres


@pytest.fixture
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    yield from activate("postgresql", tmp_path, monkeypatch)


@pytest.fixture
def conn(broker_env: dict[str, str]) -> Iterator[psycopg.Connection]:
    """The user's own connection to the broker's database (not the broker's)."""
    with psycopg.connect(require_postgres()) as connection:
        yield connection


@dataclass
class Wire:
    lines: list[str]

    @property
    def round_trips(self) -> int:
        return sum(1 for line in self.lines if line.startswith("B") and "\tReadyForQuery" in line)

    @property
    def statements(self) -> list[str]:
        """Statements the client sent: a simple Query or an extended-protocol Execute."""
        return [line for line in self.lines if line.startswith("F") and ("\tQuery\t" in line or "\tExecute\t" in line)]

    def count(self, word: str) -> int:
        return sum(1 for line in self.lines if line.startswith("F") and word in line)


@contextmanager
def wire(conn: psycopg.Connection) -> Iterator[Wire]:
    """What crosses this connection's socket inside the block, as libpq traces it."""
    with tempfile.TemporaryFile("w+") as out:
        conn.pgconn.trace(out.fileno())
        conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        seen = Wire([])
        try:
            yield seen
        finally:
            conn.pgconn.untrace()
            out.seek(0)
            seen.lines[:] = out.read().splitlines()


def test_rolled_back_tasks_never_run_and_committed_ones_do(
    workers: WorkerFactory, producer: TaskQ, conn: psycopg.Connection
) -> None:
    example_tasks_app()  # the user's task object, sent through its own app (set to this test's broker)
    from example_tasks import sleep_then

    workers.start("-c", "1")
    # Given a transaction that enqueues a task and then fails
    with pytest.raises(RuntimeError), sleep_then.app.transaction(conn):
        sleep_then.delay("rolled-back", 0)
        raise RuntimeError("the order could not be saved")
    # And one that commits, with using= on apply_async
    with conn.transaction():
        committed = sleep_then.apply_async(("committed", 0), using=conn)
        conn.execute("SELECT 1")  # the user's own work, in the same transaction
    # Then the committed task runs, and the rolled-back one never does
    assert producer.AsyncResult(committed.id).get(timeout=20) == "committed"
    after = producer.send_task("example_tasks.sleep_then", ("after", 0))  # sent after both, queued behind them
    assert after.get(timeout=20) == "after"
    assert workers.marks.count("start")["rolled-back"] == 0
    # nothing left behind either (acks follow results by a moment, by design)
    wait_until(lambda: producer.broker.queue_length("celery") == 0, 10, "the last ack")


def test_an_uncommitted_task_is_invisible_to_workers_until_commit(
    producer: TaskQ, conn: psycopg.Connection
) -> None:
    with producer.transaction(conn):
        producer.send_task("example_tasks.add", (1, 2))
        assert producer.broker.queue_length("celery") == 0  # another connection: not committed yet
    assert producer.broker.queue_length("celery") == 1


def test_each_task_costs_one_insert_and_delay_many_one_statement_per_chunk(
    producer: TaskQ, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer.broker.queue_length("celery")  # the broker's own first use (its tables) is not counted
    with producer.transaction(conn):
        with wire(conn) as singles:
            for i in range(7):
                producer.send_task("example_tasks.add", (i, i))
        monkeypatch.setattr(statements, "CHUNK", 400)
        with wire(conn) as bulk:
            producer.send_many("example_tasks.add", [((i, i), {}) for i in range(1000)])
    assert singles.round_trips == 7 and len(singles.statements) == 7 and singles.count("INSERT") == 7
    assert bulk.round_trips == 3 and len(bulk.statements) == 3  # 400 + 400 + 200
    assert producer.broker.queue_length("celery") == 1007


PRODUCER = """
import os, signal, sys, psycopg
from example_tasks import stamp
with psycopg.connect(sys.argv[1]) as conn:
    with stamp.app.transaction(conn):
        result = stamp.delay("survivor")
    print(result.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # right after COMMIT: no cleanup, no goodbye
"""


def test_a_producer_killed_right_after_commit_still_gets_its_task_run(
    workers: WorkerFactory, producer: TaskQ, broker_env: dict[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PRODUCER, require_postgres()], cwd=PROJECT, env=broker_env,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == -9, done.stderr
    task_id = done.stdout.strip()
    workers.start("-c", "1")
    assert isinstance(producer.AsyncResult(task_id).get(timeout=20), float)
    wait_until(lambda: workers.marks.count("done")["survivor"] == 1, 5, "the task's mark")


def test_wrong_connections_and_brokers_are_clear_errors(producer: TaskQ, conn: psycopg.Connection) -> None:
    with pytest.raises(ConfigurationError, match="takes a psycopg connection"):
        producer.send_task("example_tasks.add", (1, 1), using=object())
    with psycopg.connect(require_postgres().rsplit("/", 1)[0] + "/postgres") as elsewhere:
        with pytest.raises(ConfigurationError, match="workers would not see it"):
            producer.send_task("example_tasks.add", (1, 1), using=elsewhere)
    other = TaskQ("other", broker=f"sqlite:///{os.environ.get('TMPDIR', '/tmp')}/taskq-never-used.db")
    with pytest.raises(ConfigurationError, match=r"sqlite:// broker needs an outbox"), other.transaction(conn):
        pass
    other.close()


def test_sqlalchemy_connections_and_sessions_enqueue_in_their_transaction(producer: TaskQ) -> None:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    engine = sa.create_engine(require_postgres().replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with pytest.raises(RuntimeError), engine.begin() as conn:  # rolled back
            producer.send_task("example_tasks.add", (1, 1), using=conn)
            raise RuntimeError("rolled back")
        assert producer.broker.queue_length("celery") == 0
        with engine.connect() as conn:  # autobegin: the caller's commit() commits the task
            producer.send_task("example_tasks.add", (1, 2), using=conn)
            assert producer.broker.queue_length("celery") == 0
            conn.commit()
        assert producer.broker.queue_length("celery") == 1
        with Session(engine) as session:
            producer.send_many("example_tasks.add", [((i, i), {}) for i in range(3)], using=session)
            session.rollback()
            producer.send_many("example_tasks.add", [((i, i), {}) for i in range(5)], using=session)
            session.commit()
        assert producer.broker.queue_length("celery") == 6
        with engine.connect() as conn:
            with pytest.raises(RuntimeError), producer.transaction(conn):  # conn.begin() underneath
                producer.send_task("example_tasks.add", (0, 0))
                raise RuntimeError("rolled back")
            with producer.transaction(conn):
                producer.send_task("example_tasks.add", (3, 3))
        assert producer.broker.queue_length("celery") == 7
    finally:
        engine.dispose()


def test_django_connection_enqueues_in_atomic_blocks(producer: TaskQ) -> None:
    django = pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        parts = psycopg.conninfo.conninfo_to_dict(require_postgres())
        settings.configure(DATABASES={"default": {
            "ENGINE": "django.db.backends.postgresql", "NAME": parts.get("dbname", ""), "USER": parts.get("user", ""),
            "HOST": parts.get("host", ""), "PORT": parts.get("port", ""), "PASSWORD": parts.get("password", ""),
        }})  # fmt: skip
        django.setup()
    from django.db import connection, transaction

    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            producer.send_task("example_tasks.add", (1, 1), using=connection)
            raise RuntimeError("rolled back")
        assert producer.broker.queue_length("celery") == 0
        with producer.transaction(connection):  # atomic() underneath
            producer.send_task("example_tasks.add", (1, 2))
            producer.send_many("example_tasks.add", [((i, i), {}) for i in range(4)])
            assert producer.broker.queue_length("celery") == 0
        assert producer.broker.queue_length("celery") == 5
    finally:
        connection.close()
