"""Canvas on real `taskq worker` processes, on SQLite and on Redis: every construct and
nesting, failures, a 1,000-task chord, a chord whose header worker is SIGKILLed mid-task, a
header task delivered twice that counts once, and a poison header task that fails its chord."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import ChordError, TaskQ, chain, chord, group
from tests.integration.conftest import activate, example_tasks_app
from tests.integration.workers import WorkerFactory, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "redis"])
def broker_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    yield from activate(request.param, tmp_path, monkeypatch)


@pytest.fixture
def app(broker_env: dict[str, str]) -> Iterator[TaskQ]:
    """The worker's own task module, sending from this process (the same broker and backend)."""
    app = example_tasks_app()
    yield app
    app.close()


def test_every_construct_nesting_and_failure(workers: WorkerFactory, app: TaskQ) -> None:
    import example_tasks as t

    workers.start("-c", "2")
    # chain: each result is the next task's first argument; get() is the last step's
    r = (t.add.s(1, 2) | t.mul.s(10) | t.add.s(5)).apply_async()
    assert r.get(timeout=30) == 35 and r.parent.get(timeout=5) == 30
    assert [v for _, v in r.parent.parent.collect(timeout=5)] == [3, 30, 35]
    # group: results in submission order
    g = group(t.add.s(i, i) for i in range(6)).apply_async()
    assert g.get(timeout=30) == [0, 2, 4, 6, 8, 10] and g.completed_count() == 6
    # chord; chord of chains; a group inside a chain; a chain ending in a chord
    key = f"body-{uuid.uuid4().hex}"
    c = chord([t.add.s(i, 1) for i in range(5)], t.collect.s(key=key)).apply_async()
    assert c.get(timeout=30) == [1, 2, 3, 4, 5]
    c = chord([chain(t.add.s(i, 0), t.mul.s(2)) for i in range(4)], t.collect.s(key=key + "2")).apply_async()
    assert c.get(timeout=30) == [0, 2, 4, 6]
    assert chain(t.add.s(1, 1), group(t.mul.s(2), t.mul.s(3)), t.collect.s(key=key + "3")).apply_async().get(
        timeout=30
    ) == [4, 6]
    r = chain(t.add.s(1, 0), chord([t.add.s(1), t.add.s(2)], t.collect.s(key=key + "4"))).apply_async()
    assert r.get(timeout=30) == [2, 3]
    # failures: a failed step stops the chain; a failed header task fails the chord by name
    r = chain(t.add.s(1, 1), t.fail.s(), t.add.s(1)).apply_async()
    with pytest.raises(ValueError, match=r"failed on \(2,\)"):
        r.get(timeout=30)
    errback_key = f"errback-{uuid.uuid4().hex}"
    body = t.collect.s(key=key + "5").on_error(t.sleep_then.si(errback_key, 0))
    c = chord([t.add.s(1, 1), t.fail.s(), t.add.s(2, 2)], body).apply_async()
    with pytest.raises(ChordError, match=f"Dependency {c.parent.results[1].id} raised"):
        c.get(timeout=30)
    wait_until(lambda: workers.marks.count("done")[errback_key] == 1, 30, "the body's link_error")
    assert workers.marks.count("done")[key + "5"] == 0


def test_chord_of_a_thousand_runs_its_body_once_in_order(workers: WorkerFactory, app: TaskQ) -> None:
    import example_tasks as t

    workers.start("-c", "2")
    key = f"body-{uuid.uuid4().hex}"
    header = [t.add.s(i, 0) for i in range(1000)]
    started = time.perf_counter()
    result = chord(header, t.collect.s(key=key)).apply_async()
    values = result.get(timeout=120)
    took = time.perf_counter() - started
    print(f"\n1,000-task chord on {app.conf.broker_url.split(':')[0]}: {took:.2f}s to the body's result")
    assert values == list(range(1000))
    time.sleep(0.5)  # a second body run would have had time to start
    assert workers.marks.count("done")[key] == 1


def test_header_worker_sigkilled_mid_task_body_still_once(workers: WorkerFactory, app: TaskQ) -> None:
    import example_tasks as t

    victim = workers.start("-c", "1")
    key, slow = f"body-{uuid.uuid4().hex}", f"slow-{uuid.uuid4().hex}"
    header = [t.slow_add.s(0, 1, slow, 3.0), *(t.add.s(i, 0) for i in range(1, 6))]
    result = chord(header, t.collect.s(key=key)).apply_async()
    wait_until(lambda: workers.marks.count("start")[slow] == 1, 30, "the slow header task to start")
    victim.kill_tree()  # Given the header task's worker dies mid-task
    workers.start("-c", "2")  # When another worker takes its message (recovery time 2 s)
    assert result.get(timeout=60) == [1, 1, 2, 3, 4, 5]  # Then the body runs with every result
    assert workers.marks.count("start")[slow] == 2  # the killed task ran again
    time.sleep(0.5)
    assert workers.marks.count("done")[key] == 1  # and the body once


def test_header_task_delivered_twice_counts_once(workers: WorkerFactory, app: TaskQ) -> None:
    import example_tasks as t

    key = f"body-{uuid.uuid4().hex}"
    result, publications = chord([t.add.s(i, 10) for i in range(3)], t.collect.s(key=key)).prepare()
    # Given every header message twice (as after a worker died before acking them)
    app.broker.publish_many([*publications, *publications])
    workers.start("-c", "2")
    assert result.get(timeout=30) == [10, 11, 12]
    wait_until(lambda: sum(1 for e, k, _ in workers.marks.lines() if e == "done" and k == key) >= 1, 10, "body")
    time.sleep(1.0)  # the copies have run by now (the queue drains first)
    assert workers.marks.count("done")[key] == 1


def test_a_header_task_that_kills_every_worker_fails_the_chord(workers: WorkerFactory, app: TaskQ) -> None:
    import example_tasks as t

    # Given a chord one of whose header tasks kills its worker every time
    workers.start("-c", "1", TASKQ_MAX_DELIVERIES="1", TASKQ_RECOVERY_TIME="1")
    key, poison = f"body-{uuid.uuid4().hex}", f"poison-{uuid.uuid4().hex}"
    result = chord([t.add.s(1, 1), t.crash_worker.si(poison)], t.collect.s(key=key)).apply_async()
    # When it is dead-lettered after max_deliveries, Then the chord fails naming it (no hang)
    with pytest.raises(ChordError, match=f"Dependency {result.parent.results[1].id} raised"):
        result.get(timeout=60)
    assert workers.marks.count("done")[key] == 0
