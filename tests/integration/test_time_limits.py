"""Time limits in real workers: the soft limit raised inside the task, the hard one enforced
by the prefork supervisor while the worker keeps serving, on every broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ, TimeLimitExceeded, states
from tests.integration.conftest import BROKER_ENVS, activate
from tests.integration.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(params=sorted(BROKER_ENVS))
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


def test_overrunning_tasks_are_killed_and_the_rest_succeed(workers: WorkerFactory, producer: TaskQ) -> None:
    # Given a prefork worker of two children
    worker = workers.start("-P", "prefork", "-c", "2")
    run = uuid.uuid4().hex[:8]
    # When 10 tasks overrun their 1 s hard limit among 100 normal ones
    slow = [producer.send_task("example_tasks.overrun", (f"slow-{run}-{i}",), time_limit=1) for i in range(10)]
    fast = [producer.send_task("example_tasks.sleep_then", (f"fast-{run}-{i}", 0)) for i in range(100)]
    # Then every normal one succeeds, and every overrunning one fails with TimeLimitExceeded
    assert [r.get(timeout=60) for r in fast] == [f"fast-{run}-{i}" for i in range(100)]
    for r in slow:
        with pytest.raises(TimeLimitExceeded, match=r"hard time limit \(1s\) exceeded"):
            r.get(timeout=60)
        assert r.state == states.FAILURE and "TimeLimitExceeded" in (r.traceback or "")
    # and each killed message, delivered again once its claim expired, is acked unrun
    skipped = ("redelivered copy acked without running", "revoked; not run")
    wait_until(lambda: sum(worker.log.count(line) for line in skipped) >= 10, 30, "redeliveries acked")
    starts = workers.marks.count("start")
    assert all(starts[f"slow-{run}-{i}"] == 1 for i in range(10)), starts
    fast_starts = [starts[f"fast-{run}-{i}"] for i in range(100)]
    # (if not: which ran how often, and the worker's log, to tell a rerun from a lost mark)
    assert fast_starts == [1] * 100, ({i: n for i, n in enumerate(fast_starts) if n != 1}, worker.log[-6000:])
    assert workers.marks.count("done")[f"slow-{run}-0"] == 0
    assert worker.log.count("hard time limit (1s) exceeded: killing pool worker") == 10
    assert "exited with" not in worker.log  # killed children are replaced, not counted as crashes
    assert worker.stop() == 0


@pytest.mark.parametrize("pool", ["prefork", "solo", "threads"])
def test_soft_limit_is_raised_inside_the_task_which_cleans_up(
    workers: WorkerFactory, producer: TaskQ, pool: str
) -> None:
    workers.start("-P", pool, "-c", "2")
    key = f"soft-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    # whole seconds: pika reads an AMQP double as an integer (docs/worker.md), 0.5 would be 0
    r = producer.send_task("example_tasks.sleep_until_soft_limit", (key, 30), soft_time_limit=1)
    assert r.get(timeout=20) == "cleaned"
    assert time.monotonic() - started < 15
    assert workers.marks.count("cleanup")[key] == 1 and workers.marks.count("done")[key] == 0


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_hard_limit_in_process_pools_raises_in_the_task(workers: WorkerFactory, producer: TaskQ, pool: str) -> None:
    """No child to kill: the hard limit is raised inside the task, between two bytecodes in
    a thread, so the task sleeps in short steps here (docs/worker.md)."""
    workers.start("-P", pool, "-c", "2")
    key = f"hard-{uuid.uuid4().hex[:8]}"
    r = producer.send_task("example_tasks.sleep_until_soft_limit", (key, 30), time_limit=0.5)
    with pytest.raises(TimeLimitExceeded):
        r.get(timeout=20)
    assert workers.marks.count("done")[key] == 0
    assert producer.send_task("example_tasks.add", (1, 2)).get(timeout=20) == 3  # still serving
