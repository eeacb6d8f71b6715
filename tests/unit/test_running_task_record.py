"""What the runner shows about the task it runs, written straight from its per-task path
(no signal receivers): the statistics record behind ``inspect active`` and ``stats``, and the
``on_task`` hook through which a prefork child publishes its task and hard deadline to the
supervisor (time limits, ``revoke(terminate=True)``). Each must be written as the task
starts and cleared as it ends, whatever way it ends, while the task's time limit fires."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from taskq import TaskQ
from taskq.control.stats import SharedStats
from taskq.errors import SoftTimeLimitExceeded
from taskq.worker.consumer import Consumer
from taskq.worker.timelimits import NO_LIMITS, Limits

Seen = list[tuple[str, Any]]


@pytest.fixture
def app() -> TaskQ:
    name = uuid.uuid4().hex
    return TaskQ("rec", broker=f"memory://{name}", backend=f"memory://{name}", task_default_retry_delay=0)


@pytest.fixture
def stats() -> SharedStats:
    return SharedStats(4)


@pytest.fixture
def seen(app: TaskQ, stats: SharedStats) -> Iterator[Seen]:
    """A consumer thread with the worker's statistics; what its tasks saw and its hook heard."""
    found: Seen = []
    consumer = Consumer(app, ["celery"], 1)
    consumer.stats = stats
    consumer.runner.on_task = lambda task_id, limits: found.append(("on_task", (task_id, limits)))
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    yield found
    consumer.warm_stop()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_running_task_is_shown_and_its_soft_limit_fires(app: TaskQ, stats: SharedStats, seen: Seen) -> None:
    @app.task(name="rec.watched", soft_time_limit=0.5)
    def watched(n: int) -> str:
        seen.append(("active", stats.active()))
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                time.sleep(0.01)
        except SoftTimeLimitExceeded:
            return "cleaned"
        return "not stopped"

    result = watched.delay(3)
    assert result.get(timeout=15) == "cleaned"
    [active] = next(value for kind, value in seen if kind == "active")
    assert (active["id"], active["name"], active["args"]) == (result.id, "rec.watched", "(3,)")
    assert (active["kwargs"], active["queue"], active["worker_pid"]) == ("{}", "celery", os.getpid())
    assert 0 < active["time_start"] <= time.time()
    # cleared once the task ended (the result may be stored a moment before)
    wait_for(lambda: stats.processed() == 1 and stats.active() == [])
    assert hooks(seen) == [(result.id, Limits(None, 0.5)), ("", NO_LIMITS)]


@pytest.mark.parametrize("outcome", ["fails", "retries"])
def test_the_record_is_cleared_however_the_task_ends(
    app: TaskQ, stats: SharedStats, seen: Seen, outcome: str
) -> None:
    @app.task(name="rec.ends", bind=True, max_retries=1)
    def ends(self: Any) -> None:
        seen.append(("active", [a["id"] for a in stats.active()]))
        if outcome == "retries" and not self.request.retries:
            raise self.retry(countdown=0)
        raise ValueError("ends badly")

    result = ends.delay()
    with pytest.raises(ValueError, match="ends badly"):
        result.get(timeout=15)
    runs = 2 if outcome == "retries" else 1
    assert [value for kind, value in seen if kind == "active"] == [[result.id]] * runs
    wait_for(lambda: stats.processed() == runs and stats.active() == [])
    assert hooks(seen) == [(result.id, NO_LIMITS), ("", NO_LIMITS)] * runs


def hooks(seen: Seen) -> list[Any]:
    return [value for kind, value in seen if kind == "on_task"]


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.01)


def test_inspect_reserved_lists_a_batch_behind_its_first_task_and_never_a_batch_of_one(
    app: TaskQ, stats: SharedStats
) -> None:
    reserved: list[tuple[str, list[str], int]] = []

    @app.task(name="rec.look")
    def look(name: str) -> None:
        reserved.append((name, [r["args"] for r in stats.reserved()], stats.prefetched()))

    # Given three tasks queued before a consumer that fetches three at once
    for name in ("a", "b", "c"):
        look.delay(name)
    consumer = Consumer(app, ["celery"], 3)
    consumer.stats = stats
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(reserved) == 3)
        # When one more task comes alone (a batch of one, as to an idle worker)
        look.delay("d")
        wait_for(lambda: len(reserved) == 4)
    finally:
        consumer.warm_stop()
        thread.join(timeout=10)
    # Then the batch's waiting tasks were listed while each ran, and nothing while the lone one ran
    assert reserved == [
        ("a", ["('b',)", "('c',)"], 2), ("b", ["('c',)"], 1), ("c", [], 0), ("d", [], 0),
    ]  # fmt: skip
