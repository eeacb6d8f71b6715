"""Wire compatibility with the real Celery (5.x), both ways, on RabbitMQ and on kombu+redis://.

Each test writes two tiny projects that both name their task ``tasks.add``: one for taskq,
one for Celery. A Celery producer's message runs on a ``taskq worker``, and Celery's
AsyncResult reads the result from Redis; a taskq producer's message runs on a real
``celery worker`` (solo pool), and taskq's AsyncResult reads the result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from taskq import TaskQ
from tests.contract.rabbitmq_factories import fresh_vhost
from tests.integration.workers import wait_until
from tests.servers import require_rabbitmq, require_redis

celery = pytest.importorskip("celery")
pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]
REPO = Path(__file__).resolve().parents[2]

TASKQ_PROJECT = """
from taskq import TaskQ

app = TaskQ("tasks")


@app.task
def add(a, b):
    return a + b
"""

CELERY_PROJECT = """
import json
import os

from celery import Celery

app = Celery("tasks", broker=os.environ["CELERY_BROKER"], backend=os.environ["CELERY_BACKEND"])
app.conf.update(json.loads(os.environ.get("CELERY_CONF", "{{}}")))


@app.task
def add(a, b):
    return a + b
"""


@dataclass
class Side:
    """Where the two projects meet: taskq's broker URL, Celery's, the queue and settings."""

    taskq_url: str
    celery_url: str
    queue: str
    backend: str
    transport_options: dict[str, str]


@pytest.fixture(params=["rabbitmq", "kombu-redis"])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    backend = require_redis()
    queue = f"interop-{uuid.uuid4().hex[:8]}"
    if request.param == "rabbitmq":
        with fresh_vhost(require_rabbitmq()) as url:
            yield Side(url, url, queue, backend, {})
        return
    prefix = f"taskq-interop-{uuid.uuid4().hex[:8]}:"
    yield Side("kombu+" + backend, backend, queue, backend, {"global_keyprefix": prefix})
    client = redis.Redis.from_url(backend)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)


class Process:
    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        wait_until(lambda: text in self.log or self.proc.poll() is not None, timeout, text)
        assert self.proc.poll() is None, f"process exited:\n{self.log}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def _project(folder: Path, source: str) -> Path:
    folder.mkdir()
    (folder / "tasks.py").write_text(textwrap.dedent(source))
    return folder


def _env(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKQ_", "CELERY_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(folder), str(REPO)]), PYTHONUNBUFFERED="1", **extra)
    return env


def _celery_conf(side: Side, **conf: object) -> str:
    import json

    return json.dumps(
        {
            "task_default_queue": side.queue,
            "broker_transport_options": side.transport_options,
            "task_queue_max_priority": 10,  # taskq declares its queues with x-max-priority 10
            **conf,
        }
    )


def test_a_celery_producer_s_task_runs_on_a_taskq_worker(side: Side, tmp_path: Path) -> None:
    import json

    from celery import Celery

    # Given a Celery producer that sends first, so Celery declares the queue (on RabbitMQ: no
    # x-max-priority, exactly as a Celery deployment has it)
    producer = Celery("producer", broker=side.celery_url, backend=side.backend)
    producer.conf.update(json.loads(_celery_conf(side, task_queue_max_priority=None)))
    result = producer.send_task("tasks.add", (2, 3), queue=side.queue)
    # When a taskq worker that registered tasks.add consumes that queue
    folder = _project(tmp_path / "taskq_side", TASKQ_PROJECT)
    env = _env(
        folder,
        TASKQ_BROKER_URL=side.taskq_url,
        TASKQ_RESULT_BACKEND=side.backend,
        TASKQ_BROKER_TRANSPORT_OPTIONS=json.dumps(side.transport_options),
    )
    cmd = [sys.executable, "-m", "taskq", "worker", "-A", "tasks:app", "-P", "solo", "-Q", side.queue, "-l", "info",
           "-n", f"{side.queue}@%h"]  # its own name: another test's worker may hold taskq@<host> on this Redis
    worker = Process(cmd, folder, env, tmp_path / "taskq-worker.log")
    try:
        # Then Celery's AsyncResult reads the result through the Redis backend
        assert result.get(timeout=30) == 5
        assert result.state == "SUCCESS"
        assert "PRECONDITION_FAILED" not in worker.log
        if side.taskq_url.startswith("amqp"):  # the queue Celery declared is adopted, and the cost said once
            assert worker.log.count("exists with other arguments") == 1 and "no priorities" in worker.log
    finally:
        worker.stop()
        producer.close()


def test_a_taskq_producer_s_task_runs_on_a_celery_worker(side: Side, tmp_path: Path) -> None:

    # Given a real Celery worker (solo pool) with tasks.add, configured to share taskq's queue
    folder = _project(tmp_path / "celery_side", CELERY_PROJECT)
    env = _env(folder, CELERY_BROKER=side.celery_url, CELERY_BACKEND=side.backend, CELERY_CONF=_celery_conf(side))
    cmd = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-P", "solo", "-c", "1", "-Q", side.queue]
    cmd += ["--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "info"]
    # When taskq sends the task (taskq declares the queue first, with x-max-priority 10 on RabbitMQ)
    app = TaskQ("producer", broker=side.taskq_url, backend=side.backend)
    app.conf.broker_transport_options = dict(side.transport_options)
    result = app.send_task("tasks.add", args=(2, 3), queue=side.queue)
    worker = Process(cmd, folder, env, tmp_path / "celery-worker.log")
    try:
        # Then it runs there, and taskq's AsyncResult reads Celery's result
        assert result.get(timeout=30) == 5
        worker.wait_for("succeeded in")
    finally:
        worker.stop()
        app.close()
