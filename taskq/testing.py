"""pytest fixtures for testing code that uses taskq.

Installed as the ``taskq`` pytest11 plugin: it only adds fixtures, so a test run that uses
none of them is unchanged. Fixtures:

* ``taskq_config``: settings for ``taskq_app`` (override it in your conftest.py);
* ``taskq_app``: a TaskQ on a private in-memory broker and result backend;
* ``taskq_worker_parameters``: ``queues``, ``concurrency`` and ``prefetch`` for the worker;
* ``taskq_worker``: a real worker (taskq's own consumer loop and task runner) in threads of
  the test process, started before the test and stopped after it, with ``wait_for_all()``.

To test your project's own app (its tasks are registered on it), override ``taskq_app``::

    @pytest.fixture
    def taskq_app():
        with memory_app(shop.tasks.app) as app:
            yield app
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from taskq.app import TaskQ
from taskq.brokers.base import Broker, Delivery
from taskq.errors import ConfigurationError
from taskq.worker.consumer import Consumer

__all__ = ["InProcessWorker", "memory_app"]


class _Activity:
    """Counts tasks being handled and outcomes being written, and every change of that count."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.busy = 0
        self.changes = 0

    def track(self, fn: Callable[..., None]) -> Callable[..., None]:
        def tracked(*args: Any) -> None:
            with self.cond:
                self.busy += 1
                self.changes += 1
            try:
                fn(*args)
            finally:
                with self.cond:
                    self.busy -= 1
                    self.changes += 1
                    self.cond.notify_all()

        return tracked


class _QuickFetch:
    """The broker, its idle fetch cut to FETCH_SLICE: a consumer notices a stop request only
    between fetches, and a test suite stops a worker per test."""

    FETCH_SLICE = 0.1

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def fetch(self, queues: Sequence[str], max_count: int, timeout: float) -> list[Delivery]:
        return self._broker.fetch(queues, max_count, min(timeout, self.FETCH_SLICE))


class InProcessWorker:
    """A worker in threads of this process: one real Consumer per slot (fetch loop, task
    runner, claim keeper), as the threads pool runs them, without the pool's signal handlers
    and claim keeper process (a test process keeps its own)."""

    def __init__(
        self, app: TaskQ, queues: Sequence[str] | None = None, concurrency: int = 1, prefetch: int = 1
    ) -> None:
        self.app = app
        own_queues = {t.options.queue for t in app.tasks.values() if t.options.queue}
        self.queues = list(queues) if queues else sorted({app.conf.task_default_queue, *own_queues})
        self._activity = _Activity()
        self.consumers = [Consumer(app, self.queues, prefetch) for _ in range(max(1, concurrency))]
        for consumer in self.consumers:
            setattr(consumer, "broker", _QuickFetch(consumer.broker))  # noqa: B010 - stops in 0.1 s, not 1 s
            # Outcomes are written by handle() or by a later flush(): both count as busy.
            runner = consumer.runner
            setattr(runner, "handle", self._activity.track(runner.handle))  # noqa: B010 - wraps the instance's method
            setattr(runner, "flush", self._activity.track(runner.flush))  # noqa: B010
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def start(self) -> InProcessWorker:
        for slot, consumer in enumerate(self.consumers):
            name = f"taskq-test-consumer-{slot}"
            thread = threading.Thread(target=self._run, args=(consumer,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, consumer: Consumer) -> None:
        try:
            consumer.run()
        except BaseException as exc:  # shown by wait_for_all() and stop(), in the test's thread
            self._errors.append(exc)

    def stop(self, timeout: float = 10.0) -> None:
        """Warm stop: unstarted messages go back to the queue, running tasks finish."""
        for consumer in self.consumers:
            consumer.warm_stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        if alive:
            raise TimeoutError(f"taskq test worker did not stop within {timeout}s (a task still runs in {alive})")
        self._raise_if_dead()

    def __enter__(self) -> InProcessWorker:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _raise_if_dead(self) -> None:
        if self._errors:
            raise RuntimeError(f"a taskq test worker consumer died: {self._errors[0]!r}") from self._errors[0]

    def wait_for_all(self, timeout: float = 10.0) -> None:
        """Wait until every message of the worker's queues is settled (run and acknowledged,
        retried to its end, or dead-lettered) and every result is written; raise TimeoutError
        naming what is left after ``timeout`` seconds. A task sent with a countdown or
        retried later is not settled before it ran."""
        deadline = time.monotonic() + timeout
        activity = self._activity
        while True:
            self._raise_if_dead()
            with activity.cond:
                before, busy = activity.changes, activity.busy
            waiting = {q: self.app.broker.queue_length(q) for q in self.queues}
            deferred = any(c.runner.has_deferred for c in self.consumers)
            with activity.cond:
                # Nothing started or ended while we looked: the snapshot is one moment's.
                if activity.changes == before and not busy and not deferred and not any(waiting.values()):
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    left = ", ".join(f"{q}: {n}" for q, n in waiting.items() if n) or "none"
                    raise TimeoutError(
                        f"taskq tasks not settled after {timeout}s: messages left per queue: {left}; "
                        f"{activity.busy} being handled"
                    )
                activity.cond.wait(min(remaining, 0.02))  # a publish does not notify: look again soon


@contextmanager
def memory_app(app: TaskQ) -> Iterator[TaskQ]:
    """Point an app (your project's, with its tasks) at a private in-memory broker and result
    backend for the block; its own URLs come back after."""
    if app.conf.frozen:
        raise ConfigurationError("memory_app(): this app's configuration is frozen (a worker or beat started it)")
    saved = app.conf.broker_url, app.conf.result_backend
    name = f"taskq-test-{uuid.uuid4().hex}"
    app.close()
    app.conf.broker_url, app.conf.result_backend = f"memory://{name}", f"memory://{name}"
    try:
        yield app
    finally:
        app.close()
        app.conf.broker_url, app.conf.result_backend = saved


@pytest.fixture
def taskq_config() -> dict[str, Any]:
    """Settings (``app.conf`` names) for ``taskq_app``; override to change them."""
    return {}


@pytest.fixture
def taskq_app(taskq_config: dict[str, Any], tmp_path: Path) -> Iterator[TaskQ]:
    """A TaskQ on a private in-memory broker and result backend, for one test."""
    name = f"taskq-test-{uuid.uuid4().hex}"
    settings = {"worker_heartbeat_file": str(tmp_path / "taskq-worker.heartbeat"), **taskq_config}
    app = TaskQ("tests", broker=f"memory://{name}", backend=f"memory://{name}", **settings)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def taskq_worker_parameters() -> dict[str, Any]:
    """Keywords of InProcessWorker (queues, concurrency, prefetch); override to change them.
    By default the worker consumes the default queue and the queues of the tasks registered
    when it starts: a task declared in the test body with its own queue needs ``queues``."""
    return {}


@pytest.fixture
def taskq_worker(taskq_app: TaskQ, taskq_worker_parameters: dict[str, Any]) -> Iterator[InProcessWorker]:
    """A real worker on ``taskq_app`` in threads of the test process, stopped after the test."""
    with InProcessWorker(taskq_app, **taskq_worker_parameters) as worker:
        yield worker
