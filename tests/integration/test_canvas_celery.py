"""Canvas across libraries, on RabbitMQ and kombu+redis:// with a shared Redis result backend:
a chain, a group and a chord sent by a Celery 5 producer run to completion on a taskq worker,
and taskq's run on a real Celery worker; each side reads the other's results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from taskq import TaskQ, chain, chord, group, signature
from tests.integration.test_celery_interop import Process, Side, _celery_conf, _env, _project, side

__all__ = ["side"]  # the fixture, shared with test_celery_interop.py

celery = pytest.importorskip("celery")
pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

TASKQ_PROJECT = """
from taskq import TaskQ

app = TaskQ("tasks")


@app.task
def add(a, b):
    return a + b


@app.task
def tsum(values):
    return sum(values)
"""

CELERY_PROJECT = """
import json
import os

from celery import Celery

app = Celery("tasks", broker=os.environ["CELERY_BROKER"], backend=os.environ["CELERY_BACKEND"])
app.conf.update(json.loads(os.environ.get("CELERY_CONF", "{}")))


@app.task
def add(a, b):
    return a + b


@app.task
def tsum(values):
    return sum(values)
"""


def test_celery_canvas_runs_on_a_taskq_worker(side: Side, tmp_path: Path) -> None:
    from celery import Celery
    from celery import chain as cchain
    from celery import chord as cchord
    from celery import group as cgroup

    producer = Celery("producer", broker=side.celery_url, backend=side.backend)
    producer.conf.update(json.loads(_celery_conf(side, task_queue_max_priority=None)))
    add, tsum = producer.signature("tasks.add"), producer.signature("tasks.tsum")
    # Given a chain, a group and a chord sent by Celery
    chained = cchain(add.clone((1, 2)), add.clone((3,)), add.clone((4,))).apply_async()
    grouped = cgroup(add.clone((i, i)) for i in range(4)).apply_async()
    chorded = cchord([add.clone((i, 1)) for i in range(5)], tsum.clone()).apply_async()
    # When a taskq worker consumes the queue
    folder = _project(tmp_path / "taskq_side", TASKQ_PROJECT)
    env = _env(
        folder,
        TASKQ_BROKER_URL=side.taskq_url,
        TASKQ_RESULT_BACKEND=side.backend,
        TASKQ_BROKER_TRANSPORT_OPTIONS=json.dumps(side.transport_options),
        TASKQ_TASK_DEFAULT_QUEUE=side.queue,  # where it sends the next steps, as Celery would
    )
    cmd = [sys.executable, "-m", "taskq", "worker", "-A", "tasks:app", "-c", "2", "-Q", side.queue, "-l", "info"]
    worker = Process(cmd, folder, env, tmp_path / "taskq-worker.log")
    try:
        # Then Celery's results read every outcome
        assert chained.get(timeout=30) == 10
        assert grouped.get(timeout=30) == [0, 2, 4, 6]
        assert chorded.get(timeout=30) == sum(range(1, 6))
        assert "dead-lettered" not in worker.log
    finally:
        worker.stop()
        producer.close()


def test_taskq_canvas_runs_on_a_celery_worker(side: Side, tmp_path: Path) -> None:
    folder = _project(tmp_path / "celery_side", CELERY_PROJECT)
    env = _env(folder, CELERY_BROKER=side.celery_url, CELERY_BACKEND=side.backend, CELERY_CONF=_celery_conf(side))
    cmd = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-P", "solo", "-c", "1", "-Q", side.queue]
    cmd += ["--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "info"]
    app = TaskQ("producer", broker=side.taskq_url, backend=side.backend)
    app.conf.broker_transport_options = dict(side.transport_options)
    app.conf.task_default_queue = side.queue
    add, tsum = signature("tasks.add", app=app), signature("tasks.tsum", app=app)
    # Given a chain, a group and a chord sent by taskq
    chained = chain(add.clone((1, 2)), add.clone((3,)), add.clone((4,))).apply_async()
    grouped = group(add.clone((i, i)) for i in range(4)).apply_async()
    chorded = chord([add.clone((i, 1)) for i in range(5)], tsum.clone()).apply_async()
    # When a Celery worker runs them
    worker = Process(cmd, folder, env, tmp_path / "celery-worker.log")
    try:
        # Then taskq's results read every outcome
        assert chained.get(timeout=30) == 10
        assert grouped.get(timeout=30) == [0, 2, 4, 6]
        assert chorded.get(timeout=30) == sum(range(1, 6))
    finally:
        worker.stop()
        app.close()
