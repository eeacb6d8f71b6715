"""Remote control's steering pieces alone: the shared wanted state across a fork, the
handlers' replies (Celery's words) and refusals, the held-message records behind
``inspect reserved``, and a threads pool that grows and shrinks while it runs."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from taskq import TaskQ
from taskq.brokers.base import Delivery
from taskq.control import handlers
from taskq.control.handlers import WorkerInfo
from taskq.control.stats import HELD, SharedStats
from taskq.control.steering import Steering, ceiling_for
from taskq.envelope import Envelope
from taskq.worker.pools import ThreadPool


@pytest.fixture
def app() -> Iterator[TaskQ]:
    app = TaskQ("steer", broker="memory://", backend="memory://")

    @app.task(name="steer.job")
    def job(x: int) -> int:
        return x

    yield app
    app.close()


def worker_info(app: TaskQ, pool: str = "threads", concurrency: int = 2) -> WorkerInfo:
    return WorkerInfo(app, "w@h", ["celery"], pool, concurrency, 1, SharedStats(8), Steering(concurrency, ["celery"]))


def delivery(task_id: str, argsrepr: str = "(1,)") -> Delivery:
    headers = {"id": task_id, "task": "steer.job", "argsrepr": argsrepr, "kwargsrepr": "{}"}
    return Delivery(Envelope(headers, b"[]"), "celery", None)


def test_a_forked_reader_sees_each_change_whole() -> None:
    steering = Steering(2, ["a"])
    first = steering.sequence
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the pool's side: report each new state it sees until the size reaches 5
        seen = first
        while True:
            if steering.sequence != seen:
                seen, wanted = steering.read()
                os.write(write, f"{wanted.size} {','.join(wanted.queues)} {wanted.rates}\n".encode())
                if wanted.size == 5:
                    os._exit(0)
            time.sleep(0.005)
    os.close(write)
    steering.change(size=5, queues=["a", "b"], rates={"t": "2/s"})
    os.waitpid(pid, 0)
    lines = os.read(read, 4096).decode().splitlines()
    os.close(read)
    assert lines[-1] == "5 a,b {'t': '2/s'}"
    assert steering.sequence > first and steering.wanted.size == 5


def test_the_ceiling_and_a_state_too_large_to_share() -> None:
    assert (ceiling_for(1), ceiling_for(8), ceiling_for(1000)) == (16, 32, 1024)
    steering = Steering(1, ["a"])
    with pytest.raises(ValueError, match="too many queues"):
        steering.change(queues=[f"queue-{i:06d}" for i in range(10000)])
    assert steering.wanted.queues == ["a"]  # unchanged


def test_a_pool_started_on_ten_thousand_queues_holds_them_and_more() -> None:
    queues = [f"queue-{i:06d}" for i in range(10000)]  # 140 KB of JSON: more than the 64 KB floor
    steering = Steering(2, queues)
    assert steering.read()[1].queues == queues
    steering.change(queues=[*queues, *(f"more-{i:06d}" for i in range(10000))])
    assert len(steering.read()[1].queues) == 20000


def test_pool_size_replies_and_refusals(app: TaskQ) -> None:
    info = worker_info(app)
    assert handlers.handle(info, "pool_grow", {"n": 3}) == {"ok": "pool will grow"}
    assert info.steering is not None and info.steering.wanted.size == 5 and info.concurrency == 5
    assert handlers.handle(info, "pool_shrink", {"n": "4"}) == {"ok": "pool will shrink"}  # text from a CLI
    assert "keeps at least 1" in handlers.handle(info, "pool_shrink", {})["error"]
    assert "grows to at most 16" in handlers.handle(info, "pool_grow", {"n": 16})["error"]
    for bad in (0, -1, "two", True, None):
        assert "positive whole number" in handlers.handle(info, "pool_grow", {"n": bad})["error"]
    solo = worker_info(app, "solo", 1)
    assert "solo pool runs one task at a time" in handlers.handle(solo, "pool_grow", {"n": 1})["error"]
    assert handlers.stats(solo)["pool"]["max-concurrency"] == 1


def test_rate_limit_replies_as_celery_s_and_reaches_the_shared_state(app: TaskQ) -> None:
    info = worker_info(app)
    assert handlers.handle(info, "rate_limit", {"task_name": "steer.job", "rate_limit": "10/m"}) == {
        "ok": "new rate limit set successfully"
    }
    assert info.steering is not None and info.steering.read()[1].rates == {"steer.job": "10/m"}
    assert handlers.handle(info, "rate_limit", {"task_name": "steer.job", "rate_limit": 0}) == {
        "ok": "rate limit disabled successfully"
    }
    assert info.steering.read()[1].rates == {"steer.job": "0"}
    assert handlers.handle(info, "rate_limit", {"task_name": "nope", "rate_limit": "1/s"}) == {"error": "unknown task"}
    bad = handlers.handle(info, "rate_limit", {"task_name": "steer.job", "rate_limit": "fast"})
    assert bad["error"].startswith("Invalid rate limit string")


def test_queues_added_and_cancelled(app: TaskQ) -> None:
    info = worker_info(app)
    # Celery's client sends exchange, exchange_type, routing_key and options too
    args = {"queue": "extra", "exchange": None, "exchange_type": None, "routing_key": None}
    assert handlers.handle(info, "add_consumer", args) == {"ok": "add consumer extra"}
    assert handlers.handle(info, "add_consumer", {"queue": "extra"}) == {"ok": "already consuming from 'extra'"}
    assert [q["name"] for q in handlers.active_queues(info)] == ["celery", "extra"]
    assert handlers.handle(info, "cancel_consumer", {"queue": "celery"}) == {"ok": "no longer consuming from celery"}
    assert "not consuming from 'nope'" in handlers.handle(info, "cancel_consumer", {"queue": "nope"})["error"]
    assert "last queue" in handlers.handle(info, "cancel_consumer", {"queue": "extra"})["error"]
    assert info.steering is not None and info.steering.read()[1].queues == ["extra"]


def test_held_messages_are_reserved_until_taken_and_counted_past_the_record(app: TaskQ) -> None:
    stats = SharedStats(4)
    index = stats.my_record()
    assert index is not None
    stats.hold(index, [delivery("a"), delivery("b"), delivery("c")])
    assert [r["id"] for r in stats.reserved()] == ["a", "b", "c"] and stats.prefetched() == 3
    stats.take(index, 1)  # "a" started
    info = worker_info(app)
    info.stats = stats
    reserved = handlers.reserved(info)
    assert [r["id"] for r in reserved] == ["b", "c"]
    assert reserved[0] == {
        "id": "b", "name": "steer.job", "args": "(1,)", "kwargs": "{}", "type": "steer.job", "hostname": "w@h",
        "time_start": None, "acknowledged": False, "worker_pid": None,
        "delivery_info": {"exchange": "", "routing_key": "celery", "priority": 0, "redelivered": False},
    }
    # A batch larger than the record: the first ones are listed, all are counted
    many = [delivery(f"m{i}", "x" * 90) for i in range(200)]
    stats.hold(index, many)
    listed = stats.reserved()
    assert 0 < len(listed) < HELD // 100 and stats.prefetched() == 200
    assert [r["id"] for r in listed] == [f"m{i}" for i in range(len(listed))]
    stats.hold(index, [])
    assert stats.reserved() == [] and stats.prefetched() == 0


def test_a_thread_that_ended_leaves_its_record_to_the_next() -> None:
    stats = SharedStats(2)
    taken: list[int | None] = []
    for _ in range(5):  # more threads, one after another, than records
        thread = threading.Thread(target=lambda: taken.append(stats.my_record()))
        thread.start()
        thread.join()
    assert None not in taken


def test_a_threads_pool_grows_and_shrinks_while_it_runs(app: TaskQ) -> None:
    steering = Steering(1, ["celery"])
    pool = ThreadPool(app, ["celery"], 1, 1, steering=steering)
    pool.install_signals = lambda: None  # type: ignore[method-assign]  # not the main thread here
    done = threading.Event()

    def consumers_running() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("taskq-consumer-"))

    runner = threading.Thread(target=lambda: (pool._supervise(in_main_thread=False), done.set()))
    runner.start()
    try:
        wait(lambda: consumers_running() == 1)
        steering.change(size=4)
        wait(lambda: consumers_running() == 4)
        steering.change(size=2)
        wait(lambda: consumers_running() == 2)
        assert pool.retired == {2, 3}
        steering.change(size=3)  # a stopped slot is started again (or a new one while it still ends)
        wait(lambda: consumers_running() == 3)
        assert len(pool.consumers) - len(pool.retired) == 3
    finally:
        pool._stopping.set()
        for consumer in pool.consumers:
            consumer.warm_stop()
        runner.join(10)
    assert done.is_set()


def wait(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_hold_nothing_is_true_only_when_every_process_has_an_idle_record(app: TaskQ) -> None:
    stats = SharedStats(4)
    index = stats.my_record()
    assert index is not None
    me, stranger = os.getpid(), os.getpid() + 1_000_000
    # Given this process's record, idle: it holds nothing; a process without a record is unknown
    assert stats.hold_nothing([me])
    assert not stats.hold_nothing([me, stranger])
    # When it claims a batch, it holds something until it has taken every message
    deliveries = [delivery(f"t{i}") for i in range(2)]
    stats.hold(index, deliveries)
    assert not stats.hold_nothing([me])
    stats.take(index, 2)
    assert stats.hold_nothing([me])
    # And while a task runs
    stats.task_started("id", "name", "()", "{}", "celery", "0")
    assert not stats.hold_nothing([me])
    stats.task_finished()
    assert stats.hold_nothing([me])
