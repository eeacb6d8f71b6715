"""The worker as users run it: `taskq worker` subprocesses, on every broker."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ, states
from tests.integration.conftest import BROKER_ENVS, activate
from tests.integration.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.slow
FUZZ_IN_A_WORKER = 300  # fuzzed envelopes per worker test (test_poison_fuzz.py runs 10,000 in-process)


@pytest.fixture(params=sorted(BROKER_ENVS))
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo", "gevent"])
def test_round_trip_on_every_pool(workers: WorkerFactory, producer: TaskQ, pool: str) -> None:
    workers.start("-P", pool, "-c", "2")
    results = [producer.send_task("example_tasks.add", (i, i)) for i in range(10)]
    assert [r.get(timeout=20) for r in results] == [2 * i for i in range(10)]
    assert workers.workers[0].stop() == 0
    log = workers.workers[0].log
    assert "Task example_tasks.add[" in log and "succeeded in" in log


def test_retry_sequence(workers: WorkerFactory, producer: TaskQ) -> None:
    workers.start("-c", "1")
    r = producer.send_task("example_tasks.flaky", ("f1", 2))
    assert r.get(timeout=20) == 2
    assert workers.marks.count("start")["f1"] == 3 and workers.marks.count("done")["f1"] == 1
    log = workers.workers[0].log
    assert log.count("retry 1 in") == 1 and log.count("retry 2 in") == 1


def test_countdown_runs_once_after_the_delay_even_across_a_worker_restart(
    workers: WorkerFactory, producer: TaskQ
) -> None:
    first = workers.start("-c", "1")
    sent = time.time()
    r = producer.send_task("example_tasks.stamp", ("late",), countdown=3)
    assert first.stop() == 0  # the delayed message waits in the broker, not in this worker
    assert r.state == states.PENDING
    workers.start("-c", "1")
    ran_at = r.get(timeout=20)
    assert ran_at >= sent + 3
    assert workers.marks.count("done")["late"] == 1


def test_kill_9_mid_task_then_the_task_completes_on_a_new_worker(workers: WorkerFactory, producer: TaskQ) -> None:
    victim = workers.start("-c", "1")
    r = producer.send_task("example_tasks.sleep_then", ("k9", 1.5))
    wait_until(lambda: workers.marks.count("start")["k9"] == 1, 15, "task start")
    victim.kill_tree()  # supervisor and (through PDEATHSIG) its child
    wait_until(lambda: not _alive(workers.marks.pids("start", "k9")[0]), 10, "child to die")
    assert workers.marks.count("done")["k9"] == 0
    workers.start("-c", "1")  # recovery_time is 2 s in these tests
    assert r.get(timeout=30) == "k9"
    assert workers.marks.count("start")["k9"] == 2 and workers.marks.count("done")["k9"] == 1


def test_a_task_longer_than_the_recovery_time_runs_once(workers: WorkerFactory, producer: TaskQ) -> None:
    workers.start("-c", "1")
    workers.start("-c", "1")
    r = producer.send_task("example_tasks.sleep_then", ("long", 6.0))  # 3x the 2 s recovery time
    assert r.get(timeout=30) == "long"
    assert workers.marks.count("start")["long"] == 1


def test_warm_shutdown_returns_unstarted_messages_at_once(workers: WorkerFactory, producer: TaskQ) -> None:
    # Given a worker holding prefetched messages and a recovery time far longer than the test
    w = workers.start("-c", "2", "--prefetch-multiplier", "4", TASKQ_RECOVERY_TIME="120")
    results = [producer.send_task("example_tasks.sleep_then", (f"w{i}", 0.5)) for i in range(20)]
    wait_until(lambda: sum(workers.marks.count("start").values()) >= 2, 15, "first tasks to start")
    # When it is told to stop (warm)
    w.signal(signal.SIGTERM)
    assert w.proc.wait(30) == 0
    started = workers.marks.count("start")
    # Then every started task finished, and nothing is lost or still claimed:
    assert all(workers.marks.count("done")[k] == 1 for k in started)
    # Unstarted messages came back at once: with a 120 s recovery time, waiting for claims
    # to expire would blow the 40 s budget below.
    workers.start("-c", "2")
    assert [r.get(timeout=40) for r in results] == [f"w{i}" for i in range(20)]
    assert set(workers.marks.count("start").values()) == {1}, "a task ran twice"


@pytest.mark.parametrize("prefetch", ["1", "4"])
def test_messages_waiting_behind_a_long_task_run_on_an_idle_worker(
    workers: WorkerFactory, producer: TaskQ, prefetch: str
) -> None:
    # Given a long task and three short ones queued before a one-slot worker starts: it claims
    # all four (prefetch 4), or takes the long one while RabbitMQ pushes the rest ahead (1)
    producer.send_task("example_tasks.sleep_then", ("long", 40.0))
    short = [producer.send_task("example_tasks.sleep_then", (f"s{i}", 0.0)) for i in range(3)]
    busy = workers.start("-P", "solo", "--prefetch-multiplier", prefetch, TASKQ_WORKER_HOLD_LIMIT="0.5")
    wait_until(lambda: workers.marks.count("start")["long"] == 1, 20, "the long task to start")
    # When a second worker starts
    idle = workers.start("-P", "solo")
    # Then the short ones run there, long before the long one ends, each once
    assert [r.get(timeout=20) for r in short] == ["s0", "s1", "s2"]
    assert workers.marks.count("done")["long"] == 0
    assert {workers.marks.pids("done", f"s{i}")[0] for i in range(3)} == {idle.proc.pid}
    assert all(workers.marks.count("start")[f"s{i}"] == 1 for i in range(3))
    busy.kill_tree()


def test_poison_message_is_dead_lettered_and_the_worker_keeps_running(
    workers: WorkerFactory, producer: TaskQ
) -> None:
    from taskq.envelope import Envelope

    producer.broker.publish("celery", Envelope({"task": "example_tasks.add", "id": "poison-1"}, b"\x00garbage"))
    producer.send_task("example_tasks.nope", task_id="poison-2")
    w = workers.start("-c", "1")
    assert producer.send_task("example_tasks.add", (1, 1)).get(timeout=20) == 2
    wait_until(lambda: len(producer.broker.dead_letters()) == 2, 10, "dead letters")
    reasons = {d.id: d.reason for d in producer.broker.dead_letters()}
    assert "does not decode" in reasons["poison-1"] and "unknown task" in reasons["poison-2"]
    assert w.log.count("dead-lettered") == 2 and w.proc.poll() is None


def test_a_task_that_kills_its_worker_every_time_stops_after_max_deliveries(
    workers: WorkerFactory, producer: TaskQ
) -> None:
    workers.start("-c", "1", TASKQ_MAX_DELIVERIES="2", TASKQ_RECOVERY_TIME="1")
    r = producer.send_task("example_tasks.crash_worker", ("boom",))
    with pytest.raises(Exception, match="max_deliveries=2"):
        r.get(timeout=40)
    assert workers.marks.count("start")["boom"] == 3  # first delivery + 2 redeliveries
    [dead] = producer.broker.dead_letters()
    assert dead.id == r.id
    assert producer.send_task("example_tasks.add", (2, 2)).get(timeout=20) == 4  # worker still serves


def _alive(pid: int) -> bool:
    try:
        import os

        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("pool", ["prefork", "threads", "gevent"])
def test_sigterm_right_after_ready_is_a_clean_warm_shutdown(workers: WorkerFactory, pool: str) -> None:
    for _ in range(3):
        w = workers.start("-P", pool, "-c", "2")  # returns as soon as 'ready' is logged
        w.signal(signal.SIGTERM)
        assert w.proc.wait(30) == 0, w.log


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_two_workers_with_embedded_beat_enqueue_each_instant_once(workers: WorkerFactory, pool: str) -> None:
    schedule = '{"tick": {"task": "example_tasks.record_instant", "schedule": 0.5}}'
    first = workers.start("-P", pool, "-c", "1", "--beat", TASKQ_BEAT_SCHEDULE=schedule)
    second = workers.start("-P", pool, "-c", "1", "--beat", TASKQ_BEAT_SCHEDULE=schedule)

    def instants() -> dict[str, int]:
        return {k: n for k, n in workers.marks.count("done").items() if k.startswith("instant@")}

    wait_until(lambda: len(instants()) >= 8, 30, "periodic runs")
    for w in (first, second):
        assert w.stop() == 0, w.log
    runs = instants()
    assert "instant@None" not in runs
    assert set(runs.values()) == {1}, f"an instant ran twice: {runs}"


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo", "gevent"])
def test_a_consumer_ended_by_its_task_is_started_again(workers: WorkerFactory, producer: TaskQ, pool: str) -> None:
    w = workers.start("-P", pool, "-c", "2")
    r = producer.send_task("example_tasks.exit_once", ("x1",))
    assert r.get(timeout=30) == "x1"  # its claim expired (2 s) and a new consumer ran it again
    assert workers.marks.count("start")["x1"] == 2
    wait_until(lambda: "starting a new one" in w.log, 10, "the restart to be logged")
    assert "SystemExit: 3" in w.log
    assert [producer.send_task("example_tasks.add", (i, i)).get(timeout=20) for i in range(4)] == [0, 2, 4, 6]
    assert w.stop() == 0, w.log


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_no_poison_shape_or_fuzzed_envelope_stops_a_worker(workers: WorkerFactory, producer: TaskQ, pool: str) -> None:
    from tests.poison import (
        Raw,
        dead_count,
        expected_dead_ids,
        fuzz,
        inject,
        shapes,
        store_unreadable_result,
        valid_doc,
    )

    task = "example_tasks.record_any"
    # Given a redelivered message whose stored result is not JSON (a Celery worker with
    # result_serializer='pickle' shares the backend): a claim that expires unacked
    late = producer.send_task(task, task_id=f"pickled-{uuid.uuid4()}")  # ids are unique: the backend is shared
    backend = producer.backend
    assert backend is not None
    store_unreadable_result(backend, late.id, b"\x80\x04\x95 pickled by celery")
    assert producer.broker.fetch(["celery"], 1, 10)
    producer.broker.close()  # RabbitMQ returns it marked redelivered; elsewhere it expires in 2 s
    # and every poison shape, and fuzzed envelopes between good messages, stored raw
    run = uuid.uuid4().hex[:8]  # ids of this run only: the result backend may be shared
    poison, fuzzed = shapes(task), fuzz(len(pool), FUZZ_IN_A_WORKER, task, prefix=f"fz-{run}")  # a seed per pool
    good = [Raw(valid_doc(task, f"good-{run}-{i}")) for i in range(len(fuzzed) // 25 + 1)]
    mixed = [m for i, raw in enumerate(fuzzed) for m in ([good[i // 25], raw] if i % 25 == 0 else [raw])]
    inject(producer.broker, "celery", [*poison, *mixed, good[-1]])
    # When a worker of each pool takes them all
    w = workers.start("-P", pool, "-c", "2")
    good_ids = {f"good-{run}-{i}" for i in range(len(good))}
    wait_until(lambda: good_ids <= set(workers.marks.count("done")), 60, "good messages")
    expected = len(fuzzed) + len(poison) + 1

    def settled() -> int:  # fuzzed messages run plus dead letters (RabbitMQ's queue length
        # leaves out what another connection holds unacked: this counts outcomes instead)
        runs = sum(n for key, n in workers.marks.count("done").items() if key not in good_ids)
        return runs + dead_count(producer.broker, "celery")

    wait_until(lambda: settled() >= expected and producer.broker.queue_length("celery") == 0, 30, "every outcome")
    # Then the worker never lost a consumer, and each message ran or is dead-lettered, once
    assert w.proc.poll() is None
    for line in ("Unexpected error", "died", "crashed", "exited with"):
        assert line not in w.log, f"{line!r} in the worker log:\n{w.log}"
    assert all(workers.marks.count("done")[g] == 1 for g in good_ids)
    assert settled() == expected
    dead_ids = {d.id: d.reason for d in producer.broker.dead_letters("celery", limit=1000)}
    assert expected_dead_ids(producer.broker, poison) <= set(dead_ids)
    assert f"result of task {late.id} is not a JSON document" in dead_ids[late.id]
    assert w.stop() == 0
