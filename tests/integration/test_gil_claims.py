"""A task that holds the GIL far longer than the recovery time runs once (prefork).

Its own process cannot extend its claim: the keeper thread never gets the GIL. The
supervisor extends its children's claims from outside (DESIGN.md section 6).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from tests.integration.conftest import BROKER_ENVS, activate
from tests.integration.workers import WorkerFactory

pytestmark = pytest.mark.slow


@pytest.fixture(params=sorted(BROKER_ENVS))
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


def test_a_task_holding_the_gil_for_10s_runs_once_with_a_3s_recovery_time(
    workers: WorkerFactory, producer: TaskQ
) -> None:
    # Given two prefork workers on one queue whose claims expire after 3 s unless extended
    for _ in range(2):
        workers.start("-P", "prefork", "-c", "1", TASKQ_RECOVERY_TIME="3")
    # When a task holds the GIL for 10 s in one C call (its keeper thread cannot run)
    r = producer.send_task("example_tasks.hold_gil", ("gil", 10.0))
    held = r.get(timeout=90)
    # Then it ran exactly once, though it held the GIL for several recovery times
    assert workers.marks.count("start")["gil"] == 1, workers.marks.lines()
    assert workers.marks.count("done")["gil"] == 1
    assert held > 2 * 3.0, f"the machine ran the call faster than measured: {held:.1f}s"
