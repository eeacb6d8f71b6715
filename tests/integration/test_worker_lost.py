"""task_reject_on_worker_lost as Celery defines it, in real prefork workers on every broker:
True (taskq's default) runs a task whose child died again; False fails it and never reruns it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ, states
from taskq.errors import TaskFailure
from tests.integration.conftest import BROKER_ENVS, activate
from tests.integration.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(params=sorted(BROKER_ENVS))
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


def test_off_a_lost_task_fails_with_worker_lost_and_never_runs_again(
    workers: WorkerFactory, producer: TaskQ
) -> None:
    worker = workers.start("-P", "prefork", "-c", "1", TASKQ_TASK_REJECT_ON_WORKER_LOST="false")
    key = f"lost-{uuid.uuid4().hex[:8]}"
    r = producer.send_task("example_tasks.crash_worker", (key,))
    with pytest.raises(TaskFailure, match="WorkerLostError: Worker exited prematurely"):
        r.get(timeout=20)
    assert r.state == states.FAILURE
    # its message comes back once the claim expires (2 s) and is acked unrun
    wait_until(lambda: "revoked; not run" in worker.log or "acked without running" in worker.log, 30, "skip")
    assert workers.marks.count("start")[key] == 1
    assert producer.send_task("example_tasks.add", (1, 2)).get(timeout=20) == 3


def test_on_by_default_a_lost_task_runs_again(workers: WorkerFactory, producer: TaskQ) -> None:
    workers.start("-P", "prefork", "-c", "1")
    key = f"again-{uuid.uuid4().hex[:8]}"
    r = producer.send_task("example_tasks.exit_once", (key,))  # SystemExit ends its first child
    assert r.get(timeout=30) == key
    assert workers.marks.count("start")[key] == 2
