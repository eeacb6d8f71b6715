"""The Redis result backend speaks Celery's layout: each library reads and waits on the other's."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from taskq import states
from taskq.backends.redis import RedisBackend
from taskq.config import Settings

celery = pytest.importorskip("celery")


@pytest.fixture
def url() -> str:
    from tests.servers import require_redis

    return require_redis()


@pytest.fixture
def task_id(url: str) -> Iterator[str]:
    """A fresh id whose Celery-named key is deleted afterwards (no prefix: Celery's own layout)."""
    tid = f"taskq-test-{uuid.uuid4().hex}"
    yield tid
    client = redis.Redis.from_url(url)
    client.delete(f"celery-task-meta-{tid}")
    client.close()


@pytest.fixture
def backend(url: str) -> Iterator[RedisBackend]:
    settings = Settings()
    settings.result_expires = 120.0
    instance = RedisBackend(url, settings)
    yield instance
    instance.close()


@pytest.fixture
def celery_app(url: str) -> Iterator[Any]:
    app = celery.Celery("interop", backend=url, broker="memory://")
    app.conf.result_expires = 120
    yield app
    app.close()


def when_waited_on(url: str, task_id: str, fn: Any, *args: Any, then_after: float = 0.0) -> threading.Thread:
    """In a thread: once a waiter subscribes to the task's channel (and ``then_after`` more
    seconds, the time the task takes in the scenario), run fn."""

    def run() -> None:
        client = redis.Redis.from_url(url)
        try:
            deadline = time.monotonic() + 10
            while client.pubsub_numsub(f"celery-task-meta-{task_id}")[0][1] < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            client.close()
        time.sleep(then_after)
        fn(*args)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_celery_reads_a_result_taskq_wrote(backend: RedisBackend, celery_app: Any, task_id: str) -> None:
    backend.store(task_id, states.SUCCESS, {"total": [1, 2, 3]})
    assert celery_app.AsyncResult(task_id).get(timeout=5) == {"total": [1, 2, 3]}


def test_celery_rebuilds_a_failure_taskq_wrote(backend: RedisBackend, celery_app: Any, task_id: str) -> None:
    failure = {"exc_type": "ValueError", "exc_message": ["bad input"], "exc_module": "builtins"}
    backend.store(task_id, states.FAILURE, failure, "Traceback (most recent call last): ...")
    result = celery_app.AsyncResult(task_id)
    with pytest.raises(ValueError, match="bad input"):
        result.get(timeout=5)
    assert result.traceback.startswith("Traceback")


def test_celery_waiter_wakes_on_taskq_publish(backend: RedisBackend, celery_app: Any, task_id: str) -> None:
    backend.store(task_id, states.STARTED)
    writer = when_waited_on(backend.url, task_id, backend.store, task_id, states.SUCCESS, 7)
    assert celery_app.AsyncResult(task_id).get(timeout=10) == 7
    writer.join()


def test_taskq_reads_and_waits_on_a_result_celery_wrote(
    backend: RedisBackend, celery_app: Any, task_id: str
) -> None:
    writer = when_waited_on(backend.url, task_id, celery_app.backend.store_result, task_id, {"a": 1}, states.SUCCESS)
    start = time.monotonic()
    meta = backend.wait_for(task_id, timeout=10)
    assert meta["result"] == {"a": 1} and meta["status"] == states.SUCCESS and meta["task_id"] == task_id
    assert meta["date_done"]
    assert time.monotonic() - start < 5
    writer.join()


def test_wait_blocks_on_the_subscription_not_a_polling_loop(
    backend: RedisBackend, task_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    original = backend._get

    def counted(key: str) -> bytes | None:
        reads.append(key)
        return original(key)

    monkeypatch.setattr(backend, "_get", counted)
    writer = when_waited_on(backend.url, task_id, backend.store, task_id, states.SUCCESS, "done", then_after=1.5)
    assert backend.wait_for(task_id, timeout=10)["result"] == "done"
    writer.join()
    # One read before waiting and one after the wake-up; a poller would have read ~30 times.
    assert len(reads) <= 3, reads


def test_results_and_counters_expire_in_redis(backend: RedisBackend, url: str, task_id: str) -> None:
    backend.store(task_id, states.SUCCESS, 1)
    counter = f"taskq-test-counter-{uuid.uuid4().hex}"
    assert backend.incr(counter, ttl=30) == 1
    assert backend.incr(counter, ttl=30) == 2
    client = redis.Redis.from_url(url)
    try:
        assert 110_000 < client.pttl(f"celery-task-meta-{task_id}") <= 120_000
        assert 25_000 < client.pttl(counter) <= 30_000
    finally:
        client.delete(counter)
        client.close()


@pytest.mark.parametrize("serializer", ["pickle", "msgpack"])
def test_a_result_celery_wrote_with_another_serializer_raises_invalid_result(
    backend: RedisBackend, url: str, task_id: str, serializer: str
) -> None:
    from taskq.errors import InvalidResult

    app = celery.Celery("other-serializer", backend=url, broker="memory://")
    app.conf.update(result_serializer=serializer, accept_content=[serializer], result_accept_content=[serializer])
    try:
        app.backend.store_result(task_id, {"done": True}, states.SUCCESS)
    finally:
        app.close()
    # get() reads it at once, and a waiter woken by a later write reads it again: both name it
    with pytest.raises(InvalidResult, match=f"result of task {task_id} is not a JSON document"):
        backend.wait_for(task_id, timeout=2)
    with pytest.raises(InvalidResult, match=task_id):
        backend.get_meta(task_id)


def test_a_waiter_woken_by_an_unreadable_result_reports_it(backend: RedisBackend, url: str, task_id: str) -> None:
    from taskq.errors import InvalidResult

    client = redis.Redis.from_url(url)
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError
    waiter = when_waited_on(url, task_id, lambda: (client.set(f"celery-task-meta-{task_id}", deep, ex=60),
                                                   client.publish(f"celery-task-meta-{task_id}", deep)))
    try:
        with pytest.raises(InvalidResult, match=task_id):
            backend.wait_for(task_id, timeout=10)
    finally:
        waiter.join(10)
        client.close()


def test_a_result_json_cannot_carry_raises_as_json_dumps_would(backend: RedisBackend, task_id: str) -> None:
    # The worker turns these errors into a FAILURE "result not serializable" (runner.py).
    with pytest.raises(TypeError):
        backend.prepare(task_id, states.SUCCESS, {1, 2})
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular"):
        backend.prepare(task_id, states.SUCCESS, circular)
    _, value = backend.prepare(task_id, states.SUCCESS, {"a": [1, "é"]})
    assert b'"result":{"a":[1,"\\u00e9"]}' in value  # compact, ASCII only, as Celery writes
