"""The threads and solo pools keep their consumers alive: a consumer that dies is started
again, the health check fails while one is dead, a pool that lost them all exits 1."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from taskq import TaskQ
from taskq.worker import restarts
from taskq.worker.heartbeat import DeadConsumers, Heartbeat, dead_consumers
from taskq.worker.pools import ThreadPool


@pytest.fixture
def app(tmp_path: Path) -> TaskQ:
    name = uuid.uuid4().hex
    return TaskQ(
        "tests", broker=f"memory://{name}", backend=f"memory://{name}", recovery_time=1.0,
        worker_heartbeat_file=str(tmp_path / "hb"), worker_shutdown_timeout=10.0,
    )


@pytest.fixture(autouse=True)
def keep_signal_handlers() -> Iterator[None]:
    """ThreadPool.run installs its handlers in this (main) thread: put pytest's back after."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@contextmanager
def watchdog(seconds: float = 20.0) -> Iterator[None]:
    """SIGTERM to this process after ``seconds``: a pool that should have ended by itself
    stops warm (and the test fails on its exit code) instead of hanging."""
    timer = threading.Timer(seconds, signal.raise_signal, (signal.SIGTERM,))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def run_until(pool: ThreadPool, done: Any, timeout: float = 20.0) -> int:
    """Run the pool in this thread until ``done()`` holds, then stop it warm; its exit code."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.02)
        signal.raise_signal(signal.SIGTERM)

    # raise_signal runs the handler in the main thread, as a real SIGTERM would
    threading.Thread(target=watch, daemon=True).start()
    return pool.run()


@pytest.mark.parametrize("concurrency", [1, 2], ids=["solo", "threads"])
def test_a_consumer_killed_by_its_task_is_started_again_and_serves(app: TaskQ, concurrency: int) -> None:
    calls: list[int] = []

    @app.task
    def exits_once(i: int) -> int:
        calls.append(i)
        if len(calls) == 1:
            raise SystemExit(3)  # not an Exception: it ends the consumer's loop
        return i

    results = [exits_once.delay(i) for i in range(4)]
    pool = ThreadPool(app, ["celery"], concurrency, 1)
    first = list(pool.consumers)
    code = run_until(pool, lambda: all(r.ready() for r in results))
    assert code == 0
    assert sorted(r.get(timeout=1) for r in results) == [0, 1, 2, 3]  # the killer ran again (redelivered)
    assert len(calls) == 5
    assert sum(a is not b for a, b in zip(first, pool.consumers, strict=True)) == 1  # one consumer replaced
    assert dead_consumers(app.conf.heartbeat_path) == []


@pytest.mark.parametrize("concurrency", [1, 2], ids=["solo", "threads"])
def test_a_pool_that_lost_every_consumer_exits_1_and_the_check_fails_meanwhile(
    app: TaskQ, concurrency: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restarts, "LIMIT", 3)
    monkeypatch.setattr(restarts, "BACKOFF", 0.2)

    def broken(*args: Any) -> Any:
        raise SystemExit("broken")

    monkeypatch.setattr(app.broker, "fetch", broken)
    pool = ThreadPool(app, ["celery"], concurrency, 1)
    seen: list[list[str]] = []
    stop = threading.Event()

    def look() -> None:
        while not stop.is_set():
            seen.append(dead_consumers(app.conf.heartbeat_path))
            time.sleep(0.01)

    looker = threading.Thread(target=look, daemon=True)
    looker.start()
    try:
        with watchdog():
            assert pool.run() == 1
    finally:
        stop.set()
        looker.join(5)
    assert any(any("SystemExit: broken" in line for line in lines) for lines in seen)
    assert dead_consumers(app.conf.heartbeat_path) == []  # the process is done: nothing left behind


def test_worker_check_fails_while_a_consumer_of_a_live_worker_is_dead(tmp_path: Path) -> None:
    from taskq.cli import cli

    path = str(tmp_path / "hb")
    env = {"TASKQ_WORKER_HEARTBEAT_FILE": path, "TASKQ_BROKER_URL": "memory://check"}
    Heartbeat(path).beat()
    runner = CliRunner()
    assert runner.invoke(cli, ["worker", "-A", "taskq.demo:app", "--check"], env=env).exit_code == 0
    dead = DeadConsumers(path)  # this test's process is the live worker
    dead.down(1, "RuntimeError: boom")
    result = runner.invoke(cli, ["worker", "-A", "taskq.demo:app", "--check"], env=env)
    assert result.exit_code == 1 and "consumer 2: RuntimeError: boom" in result.output
    dead.up(1)
    assert runner.invoke(cli, ["worker", "-A", "taskq.demo:app", "--check"], env=env).exit_code == 0
    Path(f"{path}.down.999999999").write_text("consumer 1: of a process that is gone\n")
    assert runner.invoke(cli, ["worker", "-A", "taskq.demo:app", "--check"], env=env).exit_code == 0


def test_a_prefork_pool_whose_children_all_die_at_start_exits_1(app: TaskQ, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskq.worker.supervisor import PreforkPool

    monkeypatch.setattr(restarts, "LIMIT", 2)

    def broken(*args: Any) -> Any:
        raise SystemExit("broken")

    from taskq.brokers.memory import MemoryBroker

    monkeypatch.setattr(MemoryBroker, "fetch", broken)  # a forked child makes its own broker
    started = time.monotonic()
    with watchdog():
        assert PreforkPool(app, ["celery"], 2, 1).run() == 1
    assert time.monotonic() - started < 15
    assert dead_consumers(app.conf.heartbeat_path) == []
