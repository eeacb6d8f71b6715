"""``-P gevent``: hundreds of IO-bound tasks at once on greenlets, with the same acks, claims
and shutdown as every pool."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import SoftTimeLimitExceeded, TaskQ, TaskRevokedError, TimeLimitExceeded
from tests.integration.conftest import BROKER_ENVS, activate
from tests.integration.workers import PROJECT, WorkerFactory, wait_until

pytestmark = pytest.mark.slow
SLEEPERS = 500


# PostgreSQL connections are one per consumer slot (as -P asyncio's, docs/worker.md): -c 500
# needs far more than a default server's 100, so these run on sqlite, Redis and RabbitMQ.
# PostgreSQL: one small test (test_postgresql_slots_wait_at_once) parametrizes it directly.
@pytest.fixture(params=[*sorted(kind for kind in BROKER_ENVS if kind != "postgresql"), "rabbitmq"])
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


def test_five_hundred_sleeping_tasks_run_at_once(workers: WorkerFactory, producer: TaskQ) -> None:
    worker = workers.start("-P", "gevent", "-c", str(SLEEPERS), ready=False).wait_ready(timeout=60)
    run = uuid.uuid4().hex[:8]
    keys = [f"g-{run}-{i}" for i in range(SLEEPERS)]
    started = time.monotonic()
    results = [producer.send_task("example_tasks.sleep_then", (key, 0.5)) for key in keys]
    assert [r.get(timeout=120) for r in results] == keys
    took = time.monotonic() - started
    print(f"500 x 0.5 s took {took:.1f}s")
    assert took < 30.0, took  # one at a time: 250 s
    starts, dones = workers.marks.count("start"), workers.marks.count("done")
    assert all(starts[key] == 1 and dones[key] == 1 for key in keys), "a task ran twice or not at all"
    assert len({pid for _, _, pid in workers.marks.lines()}) == 1  # one process: greenlets
    assert worker.stop(timeout=60) == 0, worker.log


@pytest.mark.parametrize("broker_env", ["postgresql"], indirect=True)
def test_postgresql_slots_wait_at_once(workers: WorkerFactory, producer: TaskQ) -> None:
    # psycopg 3 waits on gevent once it sees the patching: ten slots, three rounds of 0.5 s.
    workers.start("-P", "gevent", "-c", "10")
    keys = [f"pg-{uuid.uuid4().hex[:8]}-{i}" for i in range(30)]
    started = time.monotonic()
    results = [producer.send_task("example_tasks.sleep_then", (key, 0.5)) for key in keys]
    assert [r.get(timeout=60) for r in results] == keys
    assert time.monotonic() - started < 10.0  # one at a time: 15 s
    assert all(workers.marks.count("start")[k] == 1 for k in keys)


def test_async_def_tasks_wait_on_their_slots_loops(workers: WorkerFactory, producer: TaskQ) -> None:
    workers.start("-P", "gevent", "-c", "20")
    keys = [f"as-{uuid.uuid4().hex[:8]}-{i}" for i in range(20)]
    started = time.monotonic()
    results = [producer.send_task("example_tasks.async_sleep", (key, 1)) for key in keys]
    assert [r.get(timeout=60) for r in results] == keys
    assert time.monotonic() - started < 8.0  # one at a time: 20 s


def test_warm_shutdown_finishes_running_greenlets(workers: WorkerFactory, producer: TaskQ) -> None:
    worker = workers.start("-P", "gevent", "-c", "10", TASKQ_RECOVERY_TIME="120")
    run = uuid.uuid4().hex[:8]
    keys = [f"w-{run}-{i}" for i in range(30)]
    results = [producer.send_task("example_tasks.sleep_then", (key, 1.5)) for key in keys]
    wait_until(lambda: sum(workers.marks.count("start")[k] for k in keys) >= 10, 20, "ten tasks to start")
    assert worker.stop() == 0, worker.log
    started = [k for k in keys if workers.marks.count("start")[k]]
    assert all(workers.marks.count("done")[k] == 1 for k in started), "a started task was cut short"
    # The unstarted ones went back at once (a 120 s recovery time would blow this budget).
    workers.start("-P", "gevent", "-c", "30")
    assert [r.get(timeout=40) for r in results] == keys
    assert all(workers.marks.count("start")[k] == 1 for k in keys), "a task ran twice"


def test_sigkill_mid_run_loses_nothing(workers: WorkerFactory, producer: TaskQ) -> None:
    victim = workers.start("-P", "gevent", "-c", "50")
    run = uuid.uuid4().hex[:8]
    keys = [f"k-{run}-{i}" for i in range(100)]
    results = [producer.send_task("example_tasks.sleep_then", (key, 1.0)) for key in keys]
    wait_until(lambda: sum(workers.marks.count("start")[k] for k in keys) >= 30, 20, "tasks to start")
    victim.kill_tree()  # its claims lapse after the 2 s recovery time (RabbitMQ: at once)
    workers.start("-P", "gevent", "-c", "50")
    assert [r.get(timeout=60) for r in results] == keys
    dones = workers.marks.count("done")
    assert all(dones[k] >= 1 for k in keys)
    # Only what the killed worker had started may run twice: nothing it finished and acked.
    killed = {k for k in keys if workers.marks.pids("start", k)[:1] == [victim.proc.pid]}
    assert all(workers.marks.count("start")[k] == 1 for k in keys if k not in killed)


def test_a_task_longer_than_the_recovery_time_runs_once(workers: WorkerFactory, producer: TaskQ) -> None:
    workers.start("-P", "gevent", "-c", "5")
    workers.start("-P", "gevent", "-c", "5")
    r = producer.send_task("example_tasks.sleep_then", (f"long-{uuid.uuid4().hex[:8]}", 6.0))  # 3x recovery
    assert r.get(timeout=30).startswith("long-")
    assert workers.marks.count("start")[r.get()] == 1


def test_time_limits_are_raised_in_the_greenlet(workers: WorkerFactory, producer: TaskQ) -> None:
    workers.start("-P", "gevent", "-c", "10")
    key = f"soft-{uuid.uuid4().hex[:8]}"
    soft = producer.send_task("example_tasks.sleep_until_soft_limit", (key, 30), soft_time_limit=1)
    hard = producer.send_task("example_tasks.sleep_then", (f"hard-{key}", 30), time_limit=1)
    quick = producer.send_task("example_tasks.sleep_then", (f"quick-{key}", 0.2), time_limit=5)
    assert soft.get(timeout=20) == "cleaned"  # it caught SoftTimeLimitExceeded and returned
    assert workers.marks.count("cleanup")[key] == 1
    with pytest.raises(TimeLimitExceeded, match="hard time limit"):
        hard.get(timeout=20)
    assert quick.get(timeout=20) == f"quick-{key}"
    assert workers.marks.count("done")[f"hard-{key}"] == 0
    uncaught = producer.send_task("example_tasks.sleep_then", (f"u-{key}", 30), soft_time_limit=1)
    with pytest.raises(SoftTimeLimitExceeded):
        uncaught.get(timeout=20)


def test_gevent_from_app_settings_is_one_line(workers: WorkerFactory) -> None:
    # Not on the command line: patched all the same (TASKQ_WORKER_POOL is read before any import)
    w = workers.start("-c", "5", TASKQ_WORKER_POOL="gevent")
    assert "pool=gevent" in w.log
    assert w.stop() == 0
    # Run as something other than `taskq worker`, nothing was patched early: one line, exit 2.
    code = "from taskq.cli import main; main()"
    cmd = [sys.executable, "-c", code, "worker", "-A", "example_tasks:app", "-P", "gevent"]
    done = subprocess.run(cmd, cwd=PROJECT, env=workers.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "must monkey-patch before the app is imported" in done.stderr
    assert "Traceback" not in done.stderr


def test_revoke_terminate_stops_the_running_greenlet(workers: WorkerFactory, producer: TaskQ) -> None:
    worker = workers.start("-P", "gevent", "-c", "5")
    key = f"term-{uuid.uuid4().hex[:8]}"
    r = producer.send_task("example_tasks.sleep_then", (key, 60))
    neighbour = producer.send_task("example_tasks.sleep_then", (f"n-{key}", 3))
    wait_until(lambda: workers.marks.count("start")[key] == 1, 20, "the task to start")
    producer.control.revoke(r.id, terminate=True)
    wait_until(lambda: "terminated (revoked with terminate=True)" in worker.log, 15, "the stop")
    with pytest.raises(TaskRevokedError):
        r.get(timeout=5)
    assert neighbour.get(timeout=20) == f"n-{key}"  # the other greenlets run on
    assert producer.send_task("example_tasks.add", (1, 1)).get(timeout=20) == 2
    assert workers.marks.count("done")[key] == 0
    assert worker.stop() == 0, worker.log
    workers.start("-P", "gevent", "-c", "5")  # its message was acked: it never runs again
    time.sleep(3)  # past the 2 s recovery time
    assert workers.marks.count("start")[key] == 1


def test_a_task_that_kills_its_worker_stops_after_max_deliveries(workers: WorkerFactory, producer: TaskQ) -> None:
    # Greenlets share their process: the poison task takes the whole worker down each time.
    key = f"boom-{uuid.uuid4().hex[:8]}"
    r = producer.send_task("example_tasks.crash_worker", (key,))
    for _ in range(6):
        # Not waited for: a worker may take the poison task and die before "ready" is read.
        w = workers.start(
            "-P", "gevent", "-c", "5", ready=False, TASKQ_MAX_DELIVERIES="2", TASKQ_RECOVERY_TIME="1"
        )
        wait_until(lambda: w.proc.poll() is not None or r.ready(), 30, "a crash or the dead letter")  # noqa: B023
        if r.ready():
            break
    with pytest.raises(Exception, match="max_deliveries=2"):
        r.get(timeout=5)
    assert workers.marks.count("start")[key] == 3  # first delivery + 2 redeliveries
    assert [d.id for d in producer.broker.dead_letters()] == [r.id]
    assert producer.send_task("example_tasks.add", (2, 2)).get(timeout=20) == 4  # the last worker serves
