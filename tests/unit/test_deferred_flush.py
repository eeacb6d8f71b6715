"""Who writes a finished task's deferred result and ack: the consumer's loop before its next
fetch, or its keeper thread within FLUSH_AFTER while the loop runs another task (which may
run long). An idle worker's lone task leaves the keeper asleep."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from taskq import TaskQ
from taskq.worker.consumer import Consumer


class CountingEvent(threading.Event):
    """The keeper's wake-up event, with its set() calls counted."""

    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def set(self) -> None:
        self.sets += 1
        super().set()


@pytest.fixture
def app() -> TaskQ:
    name = uuid.uuid4().hex
    return TaskQ("flush", broker=f"memory://{name}", backend=f"memory://{name}")


@contextmanager
def running(consumer: Consumer) -> Iterator[None]:
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        consumer.warm_stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_result_is_written_while_the_next_task_of_the_batch_runs(app: TaskQ) -> None:
    release = threading.Event()

    @app.task(name="flush.fast")
    def fast() -> str:
        return "fast"

    @app.task(name="flush.slow")
    def slow() -> str:
        release.wait(10)
        return "slow"

    # Given a fast task and a slow one, fetched in one batch
    done, blocked = fast.delay(), slow.delay()
    consumer = Consumer(app, ["celery"], 2)
    with running(consumer):
        try:
            # Then the fast one's result is written while the slow one still runs (by the keeper)
            assert done.get(timeout=5) == "fast"
            assert not blocked.ready()
        finally:
            release.set()
        assert blocked.get(timeout=5) == "slow"


def test_an_idle_workers_lone_task_is_written_by_the_loop_without_waking_the_keeper(app: TaskQ) -> None:
    @app.task(name="flush.lone")
    def lone() -> str:
        return "lone"

    consumer = Consumer(app, ["celery"], 1)
    consumer._wake = wake = CountingEvent()
    with running(consumer):
        time.sleep(0.2)  # the loop waits in its fetch
        # When one task comes to the idle consumer
        assert lone.delay().get(timeout=5) == "lone"
        # Then its outcome was written, and the keeper was never woken for it
        deadline = time.monotonic() + 5
        while consumer.runner.has_deferred:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert wake.sets == 0
