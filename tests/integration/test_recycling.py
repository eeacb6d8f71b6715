"""Recycling prefork children in real workers, on every broker: a child is replaced after
max_tasks_per_child tasks or past max_memory_per_child, and no message is lost or run twice."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.integration.conftest import BROKER_ENVS, activate
from tests.integration.workers import PROJECT, WorkerFactory

pytestmark = pytest.mark.slow


@pytest.fixture(params=sorted(BROKER_ENVS))
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


def test_children_are_replaced_after_n_tasks_and_nothing_is_lost(workers: WorkerFactory, producer: TaskQ) -> None:
    # Given two children that each run at most 5 tasks
    worker = workers.start("-P", "prefork", "-c", "2", "--max-tasks-per-child", "5", "--prefetch-multiplier", "4")
    run = uuid.uuid4().hex[:8]
    keys = [f"rc-{run}-{i}" for i in range(60)]
    # When 60 tasks are sent
    results = [producer.send_task("example_tasks.sleep_then", (k, 0)) for k in keys]
    # Then each runs exactly once, by at least 12 different processes
    assert [r.get(timeout=60) for r in results] == keys
    starts = workers.marks.count("start")
    assert all(starts[k] == 1 for k in keys), starts
    pids = {pid for k in keys for pid in workers.marks.pids("start", k)}
    assert len(pids) >= 12, pids
    assert all(len([k for k in keys if pid in workers.marks.pids("start", k)]) <= 5 for pid in pids)
    assert "max_tasks_per_child=5" in worker.log and "exited with" not in worker.log
    assert worker.stop() == 0


def test_a_child_over_its_memory_limit_is_replaced(workers: WorkerFactory, producer: TaskQ) -> None:
    worker = workers.start("-P", "prefork", "-c", "1", "--max-memory-per-child", "1024")  # below any Python
    run = uuid.uuid4().hex[:8]
    keys = [f"mem-{run}-{i}" for i in range(3)]
    assert [producer.send_task("example_tasks.sleep_then", (k, 0)).get(timeout=30) for k in keys] == keys
    pids = [workers.marks.pids("start", k)[0] for k in keys]
    assert len(set(pids)) == 3  # one task per child: each was over the limit after it
    assert "max_memory_per_child=1024" in worker.log
    assert worker.stop() == 0


def test_recycling_needs_prefork_and_a_positive_count(workers: WorkerFactory) -> None:
    for args in (["-P", "threads", "--max-tasks-per-child", "3"], ["--max-memory-per-child", "-5"]):
        cmd = [sys.executable, "-m", "taskq", "worker", "-A", "example_tasks:app", *args]
        done = subprocess.run(cmd, cwd=PROJECT, env=workers.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
