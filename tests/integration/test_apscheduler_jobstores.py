"""Job stores: memory, sqlite, redis and sqlalchemy (sqlite, PostgreSQL, MariaDB) hold
jobs the scheduler runs; persistent ones keep callables by reference and refuse lambdas;
the SQL store's lock and per-instant claim behave as every schedule store's must."""

from __future__ import annotations

import importlib.util
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import taskq.beat as tq
from taskq.beat.core.entry import EntryState
from taskq.beat.core.stores.base import ClaimResult
from taskq.beat.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from taskq.beat.job import JobSerializationError
from taskq.beat.jobstores.memory import MemoryJobStore
from taskq.beat.triggers import IntervalTrigger
from tests.servers import require, require_redis

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"
HAS_SQLALCHEMY = importlib.util.find_spec("sqlalchemy") is not None


def double(value: int) -> int:
    return value * 2


def sqlalchemy_store(url: str) -> Any:
    if not HAS_SQLALCHEMY:
        pytest.skip("sqlalchemy is not installed (pip install 'taskq[sqlalchemy]')")
    from taskq.beat.jobstores.sqlalchemy import SQLAlchemyJobStore

    return SQLAlchemyJobStore(url, tablename="t" + uuid.uuid4().hex[:12], poll_interval=0.2)


def make_store(kind: str, tmp_path: Path) -> Any:
    if kind == "memory":
        return MemoryJobStore()
    if kind == "sqlite":
        from taskq.beat.jobstores.sqlite import SQLiteJobStore

        return SQLiteJobStore(str(tmp_path / "jobs.db"))
    if kind == "redis":
        from taskq.beat.jobstores.redis import RedisJobStore

        return RedisJobStore(require_redis(), prefix="aps-" + uuid.uuid4().hex)
    if kind == "sqlalchemy-sqlite":
        return sqlalchemy_store(f"sqlite:///{tmp_path / 'sa.db'}")
    if kind == "sqlalchemy-postgresql":
        require("postgresql://127.0.0.1:5432", 5432, "PostgreSQL")
        return sqlalchemy_store(POSTGRES)
    if kind == "sqlalchemy-mariadb":
        require("mysql://127.0.0.1:3306", 3306, "MariaDB")
        return sqlalchemy_store(MARIADB)
    raise AssertionError(kind)


KINDS = ["memory", "sqlite", "redis", "sqlalchemy-sqlite", "sqlalchemy-postgresql", "sqlalchemy-mariadb"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made = make_store(request.param, tmp_path)
    yield made
    for entry in made.entries():
        made.remove(entry.id)
    if hasattr(made, "drop_tables"):
        made.drop_tables()
    made.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_scheduler_runs_jobs_from_the_store(store: Any) -> None:
    # Given a scheduler whose extra job store is the one under test
    scheduler = tq.BackgroundScheduler(timezone="UTC")
    scheduler.add_jobstore(store, "extra")
    results: list[Any] = []
    scheduler.add_listener(lambda e: results.append(e.retval) if isinstance(e, JobExecutionEvent) else None,
                           EVENT_JOB_EXECUTED)
    # When an interval job is added there and the scheduler runs
    job = scheduler.add_job(double, "interval", args=[21], seconds=0.1, id="double", jobstore="extra")
    scheduler.start()
    try:
        wait_for(lambda: 42 in results)
    finally:
        scheduler.shutdown()
    # Then the store holds the job with its trigger and a reference to the function
    stored = store.get("double")
    assert stored is not None and isinstance(stored.schedule, IntervalTrigger)
    assert stored.task == f"{__name__}:double" and job.id == "double"
    assert scheduler.get_job("double", "extra") is not None


def test_persistent_stores_refuse_callables_without_a_reference(store: Any) -> None:
    scheduler = tq.BackgroundScheduler(timezone="UTC")
    scheduler.add_jobstore(store, "extra")

    def nested() -> None:
        """A function inside a function: no import reference."""

    if getattr(store, "persistent", True):
        for func in (lambda: None, nested):
            with pytest.raises(JobSerializationError, match="reference to its callable"):
                scheduler.add_job(func, "interval", seconds=1, jobstore="extra")
    else:
        assert scheduler.add_job(lambda: None, "interval", seconds=1, jobstore="extra").id


def test_lock_and_claim_each_instant_once(store: Any) -> None:
    # Given an entry stored through the API and a leader
    scheduler = tq.BackgroundScheduler(timezone="UTC")
    scheduler.add_jobstore(store, "default")
    scheduler.add_job(double, "interval", args=[1], seconds=5, id="claimed")
    entry = store.get("claimed")
    assert store.acquire_lock("a", 5.0) and not store.acquire_lock("b", 5.0)
    assert store.lock_owner() == "a" and 0 < (store.lock_remaining() or 0) <= 5.0
    instant = entry.state.next_run_time
    following = EntryState(instant + timedelta(seconds=5), instant, [])
    # When the same instant is claimed twice, and by a non-leader
    assert store.claim("b", "claimed", instant, instant, following, [], will_publish=True) is ClaimResult.NOT_LEADER
    assert store.claim("a", "claimed", instant, instant, following, [], will_publish=True) is ClaimResult.CLAIMED
    assert store.claim("a", "claimed", instant, following.next_run_time, following, []) is ClaimResult.TAKEN
    # Then the first claim wins; it stays unsent until marked sent
    assert store.unsent_claim("claimed", instant)
    store.mark_sent("claimed", instant)
    assert not store.unsent_claim("claimed", instant)
    assert store.get("claimed").state.next_run_time == following.next_run_time
    store.release_lock("a")
    assert store.acquire_lock("b", 5.0)


def test_a_change_wakes_a_waiting_reader(store: Any) -> None:
    known = store.revision()
    stop = threading.Event()
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(store.wait_for_change(10.0, stop, known)))
    waiter.start()
    scheduler = tq.BackgroundScheduler(timezone="UTC")
    scheduler.add_jobstore(store, "default")
    started = time.monotonic()
    scheduler.add_job(double, "date", args=[1], run_date=datetime.now(timezone.utc) + timedelta(hours=1))
    waiter.join(timeout=10)
    assert woke == [True] and time.monotonic() - started < 5


@pytest.mark.parametrize("kind", ["sqlalchemy-sqlite", "sqlalchemy-postgresql", "sqlalchemy-mariadb"])
def test_two_schedulers_on_one_sql_store_run_each_instant_once(kind: str, tmp_path: Path) -> None:
    # Given two schedulers (two owners) sharing one SQL job store with a fast interval job
    first = make_store(kind, tmp_path)
    second = type(first)(engine=first.engine, tablename=first.jobs.name, poll_interval=0.2)  # same tables
    runs: list[datetime] = []
    schedulers = [tq.BackgroundScheduler(timezone="UTC", lock_ttl=1.0) for _ in range(2)]
    for scheduler, store in zip(schedulers, (first, second), strict=True):
        scheduler.add_jobstore(store, "default")
        scheduler.add_listener(lambda e: runs.append(e.scheduled_run_time), EVENT_JOB_EXECUTED)
    schedulers[0].add_job(double, "interval", args=[1], seconds=0.1, id="shared", max_instances=5)
    # When both run for a while
    for scheduler in schedulers:
        scheduler.start()
    try:
        wait_for(lambda: len(runs) >= 15)
    finally:
        for scheduler in schedulers:
            scheduler.shutdown()
        first.remove("shared")
        first.drop_tables()
    # Then every scheduled instant ran once, whichever scheduler led
    assert len(runs) == len(set(runs)) >= 15
