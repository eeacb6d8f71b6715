"""Revocation in real workers, on every broker: a revoked task never runs, even on a worker
started after the revoke; terminate=True stops a running task (prefork)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ, TaskRevokedError, states
from tests.integration.conftest import BROKER_ENVS, activate
from tests.integration.workers import PROJECT, WorkerFactory, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(params=sorted(BROKER_ENVS))
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


def taskq_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskq", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_revoked_countdown_task_never_runs_across_a_restart_of_every_worker(
    workers: WorkerFactory, producer: TaskQ
) -> None:
    # Given a delayed task, revoked while it waits, and every worker restarted afterwards
    first = [workers.start("-P", "prefork", "-c", "1"), workers.start("-P", "threads", "-c", "2")]
    key = f"late-{uuid.uuid4().hex[:8]}"
    # Its eta lies past the workers' stop even on a loaded machine (about 4 s alone, over 8 s
    # loaded; with 2 s a first worker sometimes reached it and skipped it itself, leaving the
    # restart untested).
    sent = time.monotonic()
    r = producer.send_task("example_tasks.sleep_then", (key, 0), countdown=15)
    r.revoke()
    assert r.state == states.REVOKED
    for w in first:
        assert w.stop() == 0
    assert time.monotonic() - sent < 15, "the first workers took longer to stop than the countdown"
    later = workers.start("-P", "prefork", "-c", "2")
    # When its eta passes, Then the new worker skips it, and it never runs
    wait_until(lambda: "revoked; not run" in later.log, 45, "the revoked message to be skipped")
    assert workers.marks.count("start")[key] == 0
    with pytest.raises(TaskRevokedError):
        r.get(timeout=5)
    # and the worker still runs everything else
    assert producer.send_task("example_tasks.add", (2, 3)).get(timeout=20) == 5


def test_the_cli_revokes_waiting_tasks(workers: WorkerFactory, producer: TaskQ) -> None:
    keys = [f"cli-{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
    results = [producer.send_task("example_tasks.sleep_then", (k, 0), countdown=1.5) for k in keys]
    done = taskq_cli(workers.env, "revoke", "-A", "example_tasks:app", *[r.id for r in results])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"revoked {r.id}" for r in results]
    worker = workers.start("-P", "solo")
    wait_until(lambda: worker.log.count("revoked; not run") == 2, 30, "both revoked messages skipped")
    assert sum(workers.marks.count("start")[k] for k in keys) == 0
    listed = {r.task_id for r in producer.control.revocations.list()}
    assert {r.id for r in results} <= listed


def test_the_cli_rejects_bad_input_in_one_line(workers: WorkerFactory) -> None:
    for args in (["revoke", "-A", "example_tasks:app"], ["revoke", "-A", "example_tasks:app", "x", "--expires", "-1"]):
        done = taskq_cli(workers.env, *args)
        assert done.returncode == 2, done
        assert "Traceback" not in done.stderr


def test_terminate_kills_the_child_running_the_task_and_the_pool_goes_on(
    workers: WorkerFactory, producer: TaskQ
) -> None:
    worker = workers.start("-P", "prefork", "-c", "1")
    key = f"term-{uuid.uuid4().hex[:8]}"
    r = producer.send_task("example_tasks.sleep_then", (key, 60))
    wait_until(lambda: workers.marks.count("start")[key] == 1, 20, "the task to start")
    producer.control.revoke(r.id, terminate=True)
    wait_until(lambda: "revoked with terminate=True: killing pool worker 1" in worker.log, 15, "the kill")
    with pytest.raises(TaskRevokedError):
        r.get(timeout=5)
    assert producer.send_task("example_tasks.add", (1, 1)).get(timeout=20) == 2  # a fresh child serves
    # the killed message comes back once its claim expires, and is acked unrun
    wait_until(lambda: "redelivered copy acked without running" in worker.log, 30, "the killed message skipped")
    assert workers.marks.count("start")[key] == 1 and workers.marks.count("done")[key] == 0
    assert worker.stop() == 0
