"""The rpc:// result backend on the real RabbitMQ, each test in a fresh vhost: taskq with
itself, and with Celery's own rpc backend both ways (Celery 5's wire form)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from taskq.errors import ConfigurationError, TimeoutError
from tests.contract.rabbitmq_factories import fresh_vhost
from tests.integration.test_celery_interop import CELERY_PROJECT, TASKQ_PROJECT, Process, _env, _project
from tests.integration.workers import WorkerFactory, base_env
from tests.servers import require_rabbitmq

pytestmark = [pytest.mark.rabbitmq]
QUEUE = "rpc-tests"


@pytest.fixture
def amqp() -> Iterator[str]:
    with fresh_vhost(require_rabbitmq()) as url:
        yield url


@pytest.fixture
def workers(tmp_path: Path, amqp: str) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(tmp_path, base_env(tmp_path, amqp, "rpc://"))
    yield factory
    factory.close()


def _app(amqp: str) -> TaskQ:
    return TaskQ("rpc-caller", broker=amqp, backend="rpc://")


def test_a_caller_gets_success_failure_and_others_results_arrive_meanwhile(
    workers: WorkerFactory, amqp: str
) -> None:
    workers.start("-P", "threads", "-c", "2")
    app, other = _app(amqp), _app(amqp)
    try:
        first = app.send_task("example_tasks.add", (2, 3))
        second = app.send_task("example_tasks.add", (10, 20))
        failing = app.send_task("example_tasks.add", (1, "x"))  # int + str: TypeError in the task
        retried = app.send_task("example_tasks.flaky", ("rpc-flaky", 2))  # the retries keep reply_to
        # Waiting for the last one reads the others' replies too: they are kept, not lost.
        with pytest.raises(TypeError):
            failing.get(timeout=30)
        assert second.get(timeout=30) == 30
        assert first.get(timeout=30) == 5
        assert first.state == "SUCCESS" and failing.state == "FAILURE"
        assert retried.get(timeout=30) == 2
        # The messages carried the caller's reply queue; another caller never sees the state.
        assert app.backend is not None and app.backend.reply_queue()
        assert other.AsyncResult(first.id).state == "PENDING"
        with pytest.raises(TimeoutError):
            other.AsyncResult(first.id).get(timeout=0.3)
    finally:
        app.close()
        other.close()


def test_a_result_read_from_another_thread_of_the_caller(workers: WorkerFactory, amqp: str) -> None:
    import asyncio

    workers.start("-P", "prefork", "-c", "1")  # a forked child publishes the reply
    app = _app(amqp)
    try:
        result = app.send_task("example_tasks.add", (4, 4))
        assert asyncio.run(result.aget(timeout=30)) == 8  # aget waits in another thread
    finally:
        app.close()


def test_rpc_needs_a_rabbitmq_broker(tmp_path: Path) -> None:
    app = TaskQ("x", broker=f"sqlite:///{tmp_path}/b.db", backend="rpc://")
    with pytest.raises(ConfigurationError, match="amqp"):
        app.backend  # noqa: B018
    with pytest.raises(ConfigurationError, match="nothing after it"):
        TaskQ("x", broker=f"sqlite:///{tmp_path}/b.db", backend="rpc://host/x").check()


def test_celery_rpc_backend_reads_a_taskq_worker_s_result(tmp_path: Path, amqp: str) -> None:
    from celery import Celery

    # Given a Celery caller with Celery's own rpc backend, sending to taskq's queue
    producer = Celery("producer", broker=amqp, backend="rpc://")
    producer.conf.update(task_default_queue=QUEUE, task_queue_max_priority=10)
    ok = producer.send_task("tasks.add", (2, 3), queue=QUEUE)
    bad = producer.send_task("tasks.add", (2, "x"), queue=QUEUE)
    # When a taskq worker with rpc:// runs them
    folder = _project(tmp_path / "taskq_side", TASKQ_PROJECT)
    env = _env(folder, TASKQ_BROKER_URL=amqp, TASKQ_RESULT_BACKEND="rpc://")
    cmd = [sys.executable, "-m", "taskq", "worker", "-A", "tasks:app", "-P", "solo", "-Q", QUEUE, "-l", "info"]
    worker = Process(cmd, folder, env, tmp_path / "taskq-worker.log")
    try:
        # Then Celery's ResultConsumer reads both replies from its own reply queue
        assert ok.get(timeout=30) == 5
        with pytest.raises(TypeError):
            bad.get(timeout=30)
        assert bad.state == "FAILURE"
    finally:
        worker.stop()
        producer.close()


def test_taskq_rpc_backend_reads_a_celery_worker_s_result(tmp_path: Path, amqp: str) -> None:
    # Given a real Celery worker whose backend is rpc://
    folder = _project(tmp_path / "celery_side", CELERY_PROJECT)
    conf = json.dumps({"task_default_queue": QUEUE, "task_queue_max_priority": 10})
    env = _env(folder, CELERY_BROKER=amqp, CELERY_BACKEND="rpc://", CELERY_CONF=conf)
    cmd = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-P", "solo", "-c", "1", "-Q", QUEUE]
    cmd += ["--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "info"]
    # When a taskq caller with rpc:// sends it a task
    app = _app(amqp)
    result = app.send_task("tasks.add", (20, 22), queue=QUEUE)
    worker = Process(cmd, folder, env, tmp_path / "celery-worker.log")
    try:
        # Then taskq reads Celery's reply (STARTED states etc. are Celery's to send; SUCCESS here)
        assert result.get(timeout=60) == 42
        assert result.state == "SUCCESS"
    finally:
        worker.stop()
        app.close()


def test_every_state_reaches_the_caller_and_forget_drops_its_copy(tmp_path: Path, amqp: str) -> None:
    from tests.integration.workers import wait_until

    workers = WorkerFactory(tmp_path, base_env(tmp_path, amqp, "rpc://", TASKQ_TASK_TRACK_STARTED="true"))
    app = _app(amqp)
    try:
        workers.start("-P", "solo")
        result = app.send_task("example_tasks.sleep_then", ("rpc-started", 1.0))
        wait_until(lambda: result.state == "STARTED", 20, "the STARTED reply")
        assert result.get(timeout=30) == "rpc-started"
        result.forget()
        assert result.state == "PENDING"  # nothing is kept server-side: the caller's copy is gone
    finally:
        workers.close()
        app.close()


def test_a_result_connection_the_server_closed_is_replaced_on_the_next_send(amqp: str) -> None:
    from taskq import states
    from tests.contract.rabbitmq_factories import rabbitmqctl

    caller, worker_side = _app(amqp), _app(amqp)
    try:
        assert caller.backend is not None and worker_side.backend is not None
        queue = caller.backend.reply_queue()
        worker_side.backend.store("rpc-first", states.SUCCESS, 1, reply_to=queue)
        assert caller.AsyncResult("rpc-first").get(timeout=10) == 1
        # When the server closes the connection results were sent on (as after a restart)
        sock = worker_side.backend._local.link.connection._impl._transport._sock  # type: ignore[attr-defined]
        port = sock.getsockname()[1]
        names = rabbitmqctl("list_connections", "--no-table-headers", "name", "pid").splitlines()
        (pid,) = [line.split("\t")[1] for line in names if line.startswith(f"127.0.0.1:{port} ->")]
        rabbitmqctl("close_connection", pid, "test: server closed it")
        # Then the next result goes out on a new connection and reaches the caller
        worker_side.backend.store("rpc-second", states.SUCCESS, 2, reply_to=queue)
        assert caller.AsyncResult("rpc-second").get(timeout=10) == 2
    finally:
        caller.close()
        worker_side.close()
