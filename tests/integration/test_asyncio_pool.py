"""``-P asyncio``: many async def tasks at once on one event loop, with the same acks and
shutdown as every pool; async tasks on the other pools; limits on coroutines."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import SoftTimeLimitExceeded, TaskQ
from tests.integration.conftest import BROKER_ENVS, activate
from tests.integration.workers import PROJECT, WorkerFactory

pytestmark = pytest.mark.slow


# PostgreSQL connections are one per consumer slot: -P asyncio -c 50 opens more than a
# default server's 100 connections (docs/worker.md), so these run on sqlite and Redis.
@pytest.fixture(params=sorted(kind for kind in BROKER_ENVS if kind != "postgresql"))
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


def test_fifty_sleeping_coroutines_run_at_once(workers: WorkerFactory, producer: TaskQ) -> None:
    worker = workers.start("-P", "asyncio", "-c", "50")
    run = uuid.uuid4().hex[:8]
    started = time.monotonic()
    results = [producer.send_task("example_tasks.async_sleep", (f"a-{run}-{i}", 1)) for i in range(50)]
    assert [r.get(timeout=30) for r in results] == [f"a-{run}-{i}" for i in range(50)]
    took = time.monotonic() - started
    assert took < 4.0, took  # one at a time would take 50 s
    assert producer.send_task("example_tasks.add", (2, 2)).get(timeout=20) == 4  # plain def tasks too
    starts = workers.marks.count("start")
    assert all(starts[f"a-{run}-{i}"] == 1 for i in range(50))
    assert len({pid for _, _, pid in workers.marks.lines()}) == 1  # one process
    assert worker.stop() == 0


def test_each_coroutine_sees_its_own_request(workers: WorkerFactory, producer: TaskQ) -> None:
    workers.start("-P", "asyncio", "-c", "20")
    results = [producer.send_task("example_tasks.async_own_id", (0.2 + (i % 5) / 10,)) for i in range(20)]
    assert [r.get(timeout=30) for r in results] == [r.id for r in results]


def test_warm_shutdown_finishes_running_coroutines(workers: WorkerFactory, producer: TaskQ) -> None:
    worker = workers.start("-P", "asyncio", "-c", "5")
    run = uuid.uuid4().hex[:8]
    results = [producer.send_task("example_tasks.async_sleep", (f"w-{run}-{i}", 1.5)) for i in range(5)]
    deadline = time.monotonic() + 20
    while sum(workers.marks.count("start")[f"w-{run}-{i}"] for i in range(5)) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert worker.stop() == 0
    assert [r.get(timeout=5) for r in results] == [f"w-{run}-{i}" for i in range(5)]


@pytest.mark.parametrize("pool", ["prefork", "threads", "asyncio"])
def test_a_coroutine_at_its_soft_limit_is_cancelled_and_cleans_up(
    workers: WorkerFactory, producer: TaskQ, pool: str
) -> None:
    workers.start("-P", pool, "-c", "2")
    key = f"as-{uuid.uuid4().hex[:8]}"
    r = producer.send_task("example_tasks.async_until_soft_limit", (key, 30), soft_time_limit=1)
    with pytest.raises(SoftTimeLimitExceeded):
        r.get(timeout=20)
    assert workers.marks.count("cleanup")[key] == 1


def test_an_unknown_pool_is_one_line(workers: WorkerFactory) -> None:
    cmd = [sys.executable, "-m", "taskq", "worker", "-A", "example_tasks:app"]
    done = subprocess.run(cmd, cwd=PROJECT, env={**workers.env, "TASKQ_WORKER_POOL": "fibers"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown pool 'fibers'" in done.stderr and "Traceback" not in done.stderr
