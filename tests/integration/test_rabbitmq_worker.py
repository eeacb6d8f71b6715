"""The whole worker suite (test_worker.py) again, on RabbitMQ, each test in a fresh vhost.

Results go to Redis (RabbitMQ keeps no results); task ids are unique, so the Redis keys of
concurrent tests never meet.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.contract.rabbitmq_factories import fresh_vhost
from tests.integration.test_worker import *  # noqa: F403 - the same tests, with the broker_env below
from tests.integration.workers import WorkerFactory, base_env, wait_until
from tests.servers import require_rabbitmq, require_redis


@pytest.fixture  # type: ignore[no-redef]  # replaces the imported, broker-parametrized one
def broker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    amqp, redis = require_rabbitmq(), require_redis()
    with fresh_vhost(amqp) as url:
        env = base_env(tmp_path, url, redis, TASKQ_RESULT_EXPIRES="600")
        for key, value in env.items():
            if key.startswith("TASKQ_"):
                monkeypatch.setenv(key, value)  # this test process's apps use it too
        yield env


# The shared version also expects the worker's own "Returned" log line. On RabbitMQ the
# unstarted messages may sit prefetched in the broker's inbox rather than in the worker's
# list; a pool child that exits without closing its broker (os._exit) returns them by
# closing the connection, which logs nothing. The promise itself is checked below.
del test_warm_shutdown_returns_unstarted_messages_at_once  # noqa: F821


def test_warm_shutdown_loses_nothing_and_runs_nothing_twice(workers: WorkerFactory, producer: TaskQ) -> None:
    # Given a worker holding prefetched messages and a recovery time far longer than the test
    w = workers.start("-c", "2", "--prefetch-multiplier", "4", TASKQ_RECOVERY_TIME="120")
    results = [producer.send_task("example_tasks.sleep_then", (f"w{i}", 0.5)) for i in range(20)]
    wait_until(lambda: sum(workers.marks.count("start").values()) >= 2, 15, "first tasks to start")
    # When it is told to stop (warm)
    w.signal(signal.SIGTERM)
    assert w.proc.wait(30) == 0
    started = workers.marks.count("start")
    # Then every started task finished, and the rest run at once on the next worker, once each
    assert all(workers.marks.count("done")[k] == 1 for k in started)
    workers.start("-c", "2")
    assert [r.get(timeout=40) for r in results] == [f"w{i}" for i in range(20)]
    assert set(workers.marks.count("start").values()) == {1}, "a task ran twice"
