"""The ResultBackend's promises, run against every backend (see conftest.BACKENDS)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone

import pytest

from taskq import states
from taskq.backends.base import ResultBackend
from taskq.errors import TimeoutError


def test_unknown_id_is_pending(backend: ResultBackend) -> None:
    meta = backend.get_meta(uuid.uuid4().hex)
    assert meta["status"] == states.PENDING and meta["result"] is None


def test_store_and_read_celery_document(backend: ResultBackend) -> None:
    tid = uuid.uuid4().hex
    backend.store(tid, states.SUCCESS, {"x": [1, 2]})
    meta = backend.get_meta(tid)
    assert meta["status"] == states.SUCCESS
    assert meta["result"] == {"x": [1, 2]}
    assert meta["task_id"] == tid
    assert set(meta) >= {"status", "result", "traceback", "children", "date_done", "task_id"}
    assert meta["date_done"]


def test_the_time_a_result_was_done_keeps_its_fraction_of_a_second(backend: ResultBackend) -> None:
    # Expiry is measured from date_done: stored in whole seconds it reads up to a second old
    # (a result expiring in 1 s could be gone at once). Not earlier than the store began:
    # with microseconds, a truncation would need the store to start on a whole second.
    before = datetime.now(timezone.utc)
    tid = uuid.uuid4().hex
    backend.store(tid, states.SUCCESS, 1)
    done = datetime.fromisoformat(backend.get_meta(tid)["date_done"])
    assert before <= done <= datetime.now(timezone.utc)


def test_a_result_the_store_cannot_hold_does_not_lose_the_rest_of_its_batch(backend: ResultBackend) -> None:
    # A worker writes finished tasks' results in batches; a fuzzed task id (NUL, longer than
    # Celery's 155-character column) must not make the store fail its whole batch.
    good = [uuid.uuid4().hex for _ in range(3)]
    odd = ["nul\x00" + uuid.uuid4().hex, "long-" + "x" * 300]
    backend.store_many([backend.prepare(tid, states.SUCCESS, tid) for tid in [good[0], *odd, *good[1:]]])
    assert [backend.get_meta(tid)["result"] for tid in good] == good


def test_wait_wakes_when_result_arrives(backend: ResultBackend) -> None:
    tid = uuid.uuid4().hex
    backend.store(tid, states.STARTED)
    timer = threading.Timer(0.3, backend.store, (tid, states.SUCCESS, 42))
    timer.start()
    start = time.monotonic()
    meta = backend.wait_for(tid, timeout=5)
    assert meta["result"] == 42
    assert time.monotonic() - start < 2
    timer.join()


def test_wait_times_out(backend: ResultBackend) -> None:
    with pytest.raises(TimeoutError):
        backend.wait_for(uuid.uuid4().hex, timeout=0.2)


def test_forget(backend: ResultBackend) -> None:
    tid = uuid.uuid4().hex
    backend.store(tid, states.FAILURE, {"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"})
    backend.forget(tid)
    assert backend.get_meta(tid)["status"] == states.PENDING


def test_results_expire(backend: ResultBackend) -> None:
    backend.expires = 1.0
    tid = uuid.uuid4().hex
    backend.store(tid, states.SUCCESS, 1)
    assert backend.get_meta(tid)["status"] == states.SUCCESS
    deadline = time.monotonic() + 5
    while backend.get_meta(tid)["status"] != states.PENDING:
        assert time.monotonic() < deadline, "result did not expire"
        time.sleep(0.1)
        backend.cleanup()


def test_counter_is_atomic_across_threads(backend: ResultBackend) -> None:
    key = f"counter-{uuid.uuid4().hex}"

    def bump() -> None:
        for _ in range(50):
            backend.incr(key)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert backend.incr(key) == 201


def test_store_many_writes_every_document_and_wakes_waiters(backend: ResultBackend) -> None:
    ids = [uuid.uuid4().hex for _ in range(5)]
    waiter = threading.Thread(target=lambda: backend.wait_for(ids[-1], timeout=5))
    waiter.start()
    backend.store_many([backend.prepare(tid, states.SUCCESS, i) for i, tid in enumerate(ids)])
    waiter.join(timeout=6)
    assert not waiter.is_alive()
    assert [backend.get_meta(tid)["result"] for tid in ids] == [0, 1, 2, 3, 4]
