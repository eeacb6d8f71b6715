"""A RabbitMQ restart mid-run loses nothing confirmed, and the running worker resumes by itself.

The shared server stays untouched: the test starts a throwaway node of its own
(rabbitmq_node.py) and stops and starts it while a producer publishes and a worker consumes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from taskq.errors import PublishError
from tests.integration.rabbitmq_node import ThrowawayNode, require_throwaway_node
from tests.integration.workers import WorkerFactory, base_env, wait_until
from tests.servers import require_redis
from tests.throwaway import serve

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture
def node() -> Iterator[ThrowawayNode]:
    require_throwaway_node()
    node = ThrowawayNode()
    yield from serve(node, node.remove)


def test_a_restart_mid_run_loses_nothing_confirmed(
    node: ThrowawayNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = base_env(tmp_path, node.url, require_redis(), TASKQ_RESULT_EXPIRES="600")
    for key, value in env.items():
        if key.startswith("TASKQ_"):
            monkeypatch.setenv(key, value)
    workers = WorkerFactory(tmp_path, env)
    producer = TaskQ("producer", broker=node.url)
    confirmed: list[str] = []
    refused: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            key = f"k{i}"
            i += 1
            try:
                producer.send_task("example_tasks.stamp", (key,))
                confirmed.append(key)
            except PublishError:
                refused.append(key)  # not confirmed: allowed to be lost, and the producer knows

    try:
        # Given a worker consuming while a producer publishes steadily
        worker = workers.start("-c", "2", "-P", "threads")
        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        wait_until(lambda: len(confirmed) >= 50, 30, "publishing before the restart")
        # When the node stops and starts again mid-run
        node.stop()
        before_restart = len(confirmed)
        node.start()
        wait_until(lambda: len(confirmed) >= before_restart + 50, 60, "publishing after the restart")
        stop.set()
        thread.join(30)
        # Then every confirmed message runs, on the same worker process, which reconnected by itself
        wait_until(lambda: set(confirmed) <= set(workers.marks.count("done")), 90, "every confirmed task to run")
        assert worker.proc.poll() is None
        assert "Reconnected to RabbitMQ" in worker.log
    finally:
        stop.set()
        producer.close()
        workers.close()
