"""A task far longer than the heartbeat interval keeps its connection, in the solo pool.

In the solo pool the consumer thread runs the task itself, so nothing in that thread talks
to RabbitMQ while the task runs; the broker's I/O thread answers the heartbeats. With
``heartbeat=2`` RabbitMQ drops a silent connection after a few seconds: a 10 s task proves
the point in seconds rather than minutes (the same holds for a 5-minute task).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.integration.conftest import rabbitmq_worker_env
from tests.integration.workers import WorkerFactory

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    yield from rabbitmq_worker_env(tmp_path, monkeypatch, "?heartbeat=2")


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_long_task_keeps_its_connection_and_runs_once(workers: WorkerFactory, producer: TaskQ, pool: str) -> None:
    worker = workers.start("-P", pool, "-c", "1")
    r = producer.send_task("example_tasks.sleep_then", ("long", 10.0))
    assert r.get(timeout=40) == "long"
    assert workers.marks.count("start")["long"] == 1
    log = worker.log
    assert "Reconnected" not in log and "connection to RabbitMQ lost" not in log and "return to their queues" not in log
