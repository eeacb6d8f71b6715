"""Rate limits in real workers: per worker on every broker and pool, global through Redis;
messages waiting for their rate never hold other tasks up."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.integration.conftest import BROKER_ENVS, activate
from tests.integration.workers import PROJECT, WorkerFactory

pytestmark = pytest.mark.slow
APP = ("-A", "rate_tasks:app")
GLOBAL_APP = ("-A", "global_rate_tasks:app")


@pytest.fixture(params=sorted(BROKER_ENVS))
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_thirty_tasks_at_ten_per_second_take_at_least_2_7_seconds(
    workers: WorkerFactory, producer: TaskQ, pool: str
) -> None:
    workers.start(*APP, "-P", pool, "-c", "2")
    run = uuid.uuid4().hex[:8]
    started = time.monotonic()
    limited = [producer.send_task("rate_tasks.per_worker", (f"r-{run}-{i}",)) for i in range(30)]
    # Other tasks are not held up behind the waiting ones
    quick = [producer.send_task("rate_tasks.unlimited", (f"q-{run}-{i}",)) for i in range(20)]
    assert [r.get(timeout=30) for r in quick] == [f"q-{run}-{i}" for i in range(20)]
    quick_done = time.monotonic() - started
    assert [r.get(timeout=60) for r in limited] == [f"r-{run}-{i}" for i in range(30)]
    took = time.monotonic() - started
    assert took >= 2.7, took
    assert quick_done < took - 1.0, (quick_done, took)
    starts = workers.marks.count("start")
    assert all(starts[f"r-{run}-{i}"] == 1 for i in range(30))


def test_a_global_rate_holds_across_two_workers(
    workers: WorkerFactory, producer: TaskQ, request: pytest.FixtureRequest
) -> None:
    if "redis" not in request.node.callspec.id:
        started = subprocess.run(
            [sys.executable, "-m", "taskq", "worker", *GLOBAL_APP], cwd=PROJECT, env=workers.env, capture_output=True,
            text=True, timeout=60,
        )
        assert started.returncode == 2 and "needs a Redis broker" in started.stderr, started.stderr
        return
    workers.start(*GLOBAL_APP, "-P", "threads", "-c", "2")
    workers.start(*GLOBAL_APP, "-P", "prefork", "-c", "2")
    run = uuid.uuid4().hex[:8]
    started_at = time.monotonic()
    results = [producer.send_task("global_rate_tasks.shared", (f"g-{run}-{i}",)) for i in range(30)]
    assert [r.get(timeout=60) for r in results] == [f"g-{run}-{i}" for i in range(30)]
    assert time.monotonic() - started_at >= 2.7
    starts = workers.marks.count("start")
    assert all(starts[f"g-{run}-{i}"] == 1 for i in range(30))
