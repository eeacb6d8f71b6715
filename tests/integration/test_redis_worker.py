"""`taskq worker` subprocesses on Redis: crashes, long tasks, Redis restarts and ETAs.

Workers run with TASKQ_RECOVERY_TIME=2, so an abandoned claim returns within 2 s. Tests on
the shared Redis isolate their keys with a unique prefix (broker keys and result keys alike);
tests that restart Redis run their own throwaway server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from taskq import AsyncResult, TaskQ, states
from taskq.errors import TaskQError
from tests.contract.redis_factories import ThrowawayRedis, delete_prefixed, unique_prefix
from tests.integration.rerun_audit import StoredResultsWatch
from tests.integration.workers import PROJECT, WorkerFactory, base_env, wait_until
from tests.servers import require_redis

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def redis_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, prefix: str) -> dict[str, str]:
    """Worker environment on Redis; this process's producer app gets the same settings."""
    env = base_env(
        tmp_path,
        url,
        TASKQ_BROKER_TRANSPORT_OPTIONS=json.dumps({"global_keyprefix": prefix}),
        TASKQ_RESULT_KEY_PREFIX=f"{prefix}celery-task-meta-",
    )
    for key, value in env.items():
        if key.startswith("TASKQ_"):
            monkeypatch.setenv(key, value)
    return env


class Setup:
    def __init__(self, url: str, prefix: str, workers: WorkerFactory) -> None:
        self.url = url
        self.prefix = prefix
        self.workers = workers
        self.producer = TaskQ("producer", broker=url)
        self.queue = self.producer.conf.task_default_queue

    def pending_claims(self) -> int:
        """Entries of the default queue claimed by some worker and not acknowledged yet."""
        client = redis.Redis.from_url(self.url)
        try:
            total = 0
            for lane in range(10):
                key = f"{self.prefix}q:{self.queue}:{lane}"
                if client.exists(key):
                    total += int(client.xpending(key, "taskq")["pending"])
            return total
        finally:
            client.close()

    def stored_successes(self, results: list[AsyncResult[Any]]) -> set[str]:
        """The results of these tasks stored as SUCCESS now, read in one MGET (one instant)."""
        client = redis.Redis.from_url(self.url)
        try:
            names = [self.producer.backend.key_for(r.id) for r in results]
            raw = client.mget(names)
        finally:
            client.close()
        return {json.loads(value)["result"] for value in raw if value and json.loads(value)["status"] == states.SUCCESS}


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    url = require_redis()
    prefix = unique_prefix()
    workers = WorkerFactory(tmp_path, redis_env(tmp_path, monkeypatch, url, prefix))
    setup = Setup(url, prefix, workers)
    try:
        yield setup
    finally:
        workers.close()
        setup.producer.close()
        delete_prefixed(url, prefix)


@pytest.fixture
def throwaway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Setup, ThrowawayRedis]]:
    data = tmp_path / "redis-data"
    data.mkdir()
    server = ThrowawayRedis(data)
    server.start()
    workers = WorkerFactory(tmp_path, redis_env(tmp_path, monkeypatch, server.url, "taskq:"))
    setup = Setup(server.url, "taskq:", workers)
    try:
        yield setup, server
    finally:
        workers.close()
        setup.producer.close()
        server.stop()


def test_kill_9_of_a_worker_holding_50_claims_loses_none_and_repeats_none(shared: Setup) -> None:
    marks = shared.workers.marks
    # Given a worker that has claimed all 50 tasks in one batch and is working through them
    keys = [f"k{i}" for i in range(50)]
    results = shared.producer.send_many("example_tasks.sleep_then", [((k, 0.1), {}) for k in keys])
    victim = shared.workers.start("-c", "1", "--prefetch-multiplier", "50")  # its first fetch takes all
    wait_until(lambda: sum(marks.count("done").values()) >= 5, 20, "five tasks done")
    # When it is killed with SIGKILL while holding the rest
    victim.kill_tree()
    finished = {k for k, r in zip(keys, results, strict=True) if r.state == states.SUCCESS}
    assert len(finished) >= 3  # five marked done; the last ones' results may not be written yet
    assert shared.pending_claims() + len(finished) >= 49  # everything else is still claimed
    # Then a second worker completes every task once the claims expire (2 s)...
    shared.workers.start("-c", "2")
    assert [r.get(timeout=60) for r in results] == keys
    # ...no task whose result was stored runs again (even one killed between its result and
    # its ack). Only tasks cut off run a second time (at-least-once): the one running, and
    # one that had finished while its result still waited to be written with the next batch.
    started, done = marks.count("start"), marks.count("done")
    assert all(started[k] == 1 and done[k] == 1 for k in finished)
    assert set(done) == set(keys) and sum(done.values()) <= len(keys) + 2
    assert sum(started.values()) <= len(keys) + 2, {k: n for k, n in started.items() if n > 1}
    # A batch's acks follow its results (results are written first): the last may lag a moment.
    wait_until(lambda: shared.pending_claims() == 0, 5, "every claim acked")


def test_a_task_stored_but_not_acked_when_its_worker_died_is_acked_unrun(shared: Setup) -> None:
    # Given a message claimed by a worker that stored its task's result and was SIGKILLed
    # before the ack (the window between a batch's results and its acks; runner.flush)
    r = shared.producer.send_task("example_tasks.sleep_then", ("stored", 0.0))
    dying = TaskQ("dying", broker=shared.url)
    try:
        assert len(dying.broker.fetch([shared.queue], 1, 5)) == 1
        dying.backend.store(r.id, states.SUCCESS, "stored")
    finally:
        dying.close()  # nothing extends its claim from now on: as after a SIGKILL
    # When the claim expires and a live worker receives the message again
    worker = shared.workers.start("-c", "1")
    wait_until(lambda: "redelivered copy acked without running" in worker.log, 30, "the redelivered copy")
    # Then the task never ran (a stored result is never followed by a run) and no claim is left
    assert shared.workers.marks.count("start")["stored"] == 0
    assert r.get(timeout=5) == "stored"
    wait_until(lambda: shared.pending_claims() == 0, 10, "the copy acked")


def test_a_task_running_3x_the_recovery_time_runs_once(shared: Setup) -> None:
    shared.workers.start("-c", "1")
    shared.workers.start("-c", "1")
    r = shared.producer.send_task("example_tasks.sleep_then", ("long", 6.0))  # 3x the 2 s recovery time
    assert r.get(timeout=40) == "long"
    assert shared.workers.marks.count("start")["long"] == 1
    assert shared.workers.marks.count("done")["long"] == 1


def test_redis_restart_mid_run_loses_no_acknowledged_message(throwaway: tuple[Setup, ThrowawayRedis]) -> None:
    setup, server = throwaway
    marks = setup.workers.marks
    worker = setup.workers.start("-c", "2")
    # Given tasks flowing through a busy worker
    sent = [setup.producer.send_task("example_tasks.sleep_then", (f"a{i}", 0.01)).id for i in range(150)]
    wait_until(lambda: sum(marks.count("done").values()) >= 20, 20, "tasks running")
    # When Redis crashes (kill -9; every write was fsynced) and comes back
    server.restart(kill=True)
    # Then, after more work is sent, every task whose send returned runs: nothing Redis
    # acknowledged was lost, and the worker reconnected by itself.
    later: list[str] = []
    for i in range(50):
        try:
            later.append(setup.producer.send_task("example_tasks.sleep_then", (f"b{i}", 0.01)).id)
        except TaskQError:
            pass  # refused while Redis came back: not acknowledged, no promise
    assert len(later) >= 45
    expected = {f"a{i}" for i in range(150)} | {f"b{i}" for i in range(len(later))}
    wait_until(lambda: expected <= set(marks.count("done")), 60, "every acknowledged task to run")
    assert worker.proc.poll() is None, "the worker died with Redis"
    assert "unreachable" not in worker.log or "reachable again" in worker.log
    assert all(setup.producer.AsyncResult(t).state == states.SUCCESS for t in sent[-10:])


def test_eta_across_worker_and_redis_restarts_runs_once(throwaway: tuple[Setup, ThrowawayRedis]) -> None:
    setup, server = throwaway
    first = setup.workers.start("-c", "1")
    assert setup.producer.send_task("example_tasks.add", (1, 1)).get(timeout=20) == 2  # fully up
    sent = time.time()
    r = setup.producer.send_task("example_tasks.stamp", ("eta",), countdown=4)
    # The delayed message waits in Redis, not in the worker: stop the worker, crash Redis too.
    assert first.stop() == 0
    server.restart(kill=True)
    assert r.state == states.PENDING
    setup.workers.start("-c", "1")
    setup.workers.start("-c", "1")
    ran_at = r.get(timeout=30)
    assert ran_at >= sent + 4
    wait_until(lambda: setup.workers.marks.count("done")["eta"] >= 1, 5, "eta task marked")
    # No copy is left anywhere to run a second time.
    client = redis.Redis.from_url(setup.url)
    try:
        assert client.zcard(f"taskq:q:{setup.queue}:delayed") == 0
    finally:
        client.close()
    wait_until(lambda: setup.pending_claims() == 0, 5, "the eta task's ack")
    assert setup.workers.marks.count("done")["eta"] == 1


def test_worker_runs_higher_priority_first(shared: Setup) -> None:
    # Given a backlog sent before any worker runs: low priority first, high priority last
    low = [shared.producer.send_task("example_tasks.stamp", (f"low{i}",), priority=0) for i in range(5)]
    high = [shared.producer.send_task("example_tasks.stamp", (f"high{i}",), priority=9) for i in range(5)]
    # When one single-slot worker drains it
    shared.workers.start("-P", "solo", "--prefetch-multiplier", "1")
    low_times = [r.get(timeout=20) for r in low]
    high_times = [r.get(timeout=20) for r in high]
    # Then every high-priority task ran before every low-priority one
    assert max(high_times) < min(low_times)


def test_cli_queues_and_dead_letters_on_redis(shared: Setup) -> None:
    env = shared.workers.env

    def taskq(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "taskq", *args, "-A", "example_tasks:app"],
            cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    # Given a poison message (unknown task) dead-lettered by a worker, and one waiting message
    worker = shared.workers.start("-c", "1")
    shared.producer.send_task("example_tasks.missing", task_id="dead-on-redis")
    wait_until(lambda: shared.producer.broker.dead_letters(), 15, "dead letter")
    worker.stop()
    shared.producer.send_task("example_tasks.add", (1, 2), priority=5)
    # Then the CLI lists queue and dead letter, requeues it, and purges both
    listing = taskq("queues").splitlines()
    assert any(line.split() == [shared.queue, "1", "1"] for line in listing), listing
    dead = taskq("dead-letters", "list")
    assert "dead-on-redis" in dead and "unknown task 'example_tasks.missing'" in dead
    assert "requeued 1" in taskq("dead-letters", "requeue", "dead-on-redis")
    assert shared.producer.broker.queue_length(shared.queue) == 2
    assert "purged 2" in taskq("purge", "-f")
    assert "purged 0" in taskq("dead-letters", "purge")
    assert shared.producer.broker.queues() == []


def test_workers_killed_again_and_again_lose_nothing(shared: Setup) -> None:
    marks = shared.workers.marks
    keys = [f"c{i}" for i in range(300)]
    results = shared.producer.send_many("example_tasks.sleep_then", [((k, 0.02), {}) for k in keys])
    # The stored results are watched throughout: a snapshot taken after a kill would also hold
    # tasks the kill cut off that live workers had already run again and stored (rerun_audit.py).
    with StoredResultsWatch(lambda: shared.stored_successes(results), marks) as watch:
        # Given 300 tasks and two busy workers (2 processes each)
        starting = [shared.workers.start("-c", "2", "--prefetch-multiplier", "8", ready=False) for _ in range(2)]
        workers = [w.wait_ready() for w in starting]
        # When, twice, a worker is killed with SIGKILL mid-run and a fresh one takes its place
        # (not waited for: the survivors would finish everything while it starts)
        done_at_kill = []
        for round_ in (1, 2):
            wait_until(lambda r=round_: sum(marks.count("done").values()) >= 60 * r, 30, f"progress {round_}")
            workers.pop(0).kill_tree()
            done_at_kill.append(sum(marks.count("done").values()))
            workers.append(shared.workers.start("-c", "2", "--prefetch-multiplier", "8", ready=False))
        # Then every task completes; no task started again once its result was stored...
        assert [r.get(timeout=60) for r in results] == keys
        for worker in workers:
            worker.wait_ready()
    assert max(done_at_kill) < len(keys)  # the kills landed mid-run
    started = marks.count("start")
    assert set(started) == set(keys)
    assert len(watch.snapshots) >= 10 and watch.snapshots[-1][0] == set(keys)
    assert watch.starts_after_stored() == {}
    # ...and only tasks cut off ran twice (at-least-once; per killed process: the one running
    # and one finished whose result was still being batched).
    assert sum(started.values()) - len(keys) <= 2 * 2 * 2, {k: n for k, n in started.items() if n > 1}
    wait_until(lambda: shared.pending_claims() == 0, 10, "every claim acked")
