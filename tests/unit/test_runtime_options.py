"""Time limits, rate limits and revocations, piece by piece (the worker tests run them whole)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq import SoftTimeLimitExceeded, TaskQ, TaskRevokedError, TimeLimitExceeded, states
from taskq.brokers.base import Delivery
from taskq.config import Settings
from taskq.errors import ConfigurationError
from taskq.revocations import REFRESH, Revocations, Revoked, SQLiteRevocations
from taskq.task import TaskOptions
from taskq.worker.ratelimit import RateLimiter, SharedClocks, parse_rate
from taskq.worker.runner import TaskRunner
from taskq.worker.slots import ChildSlots, Running
from taskq.worker.timelimits import (
    NO_LIMITS,
    Alarm,
    Limits,
    app_limits,
    check_limit,
    effective,
    limits_of,
    task_limits,
)
from tests.unit.conftest import inline_worker


def test_rates_parse_as_celery_writes_them() -> None:
    assert parse_rate("100/s") == 100 and parse_rate("10/m") == 10 / 60 and parse_rate("2/h") == 2 / 3600
    assert parse_rate(5) == 5 and parse_rate("0") is None and parse_rate(None) is None
    for bad in ("10/d", "fast", "-1/s", "", [10], True):
        with pytest.raises(ConfigurationError, match="rate_limit"):
            parse_rate(bad)


@pytest.mark.parametrize("header", [None, [None, None], (None, None), [3, None], [None, 1], "junk", [None, None, 3]])
@pytest.mark.parametrize("task", [(None, None), (10, None), (None, 4)])
@pytest.mark.parametrize("app", [Limits(), Limits(20, 5), Limits(None, 6)])
def test_limits_of_a_call_are_effective_ones_and_no_limit_is_the_shared_one(
    header: object, task: tuple[float | None, float | None], app: Limits
) -> None:
    options = TaskOptions("t", time_limit=task[0], soft_time_limit=task[1])
    got = limits_of(header, options, app)
    assert got == effective(header, task_limits(options), app)
    if not got.any:
        assert got is NO_LIMITS  # the runner skips arming the alarm for exactly this object


def test_time_limits_come_from_the_header_then_the_task_then_the_app() -> None:
    assert check_limit(0, "x") is None and check_limit("2.5", "x") == 2.5
    for bad in (-1, "soon", float("nan"), float("inf"), True):
        with pytest.raises(ConfigurationError):
            check_limit(bad, "x")
    task, app = Limits(10, None), Limits(20, 5)
    assert effective([None, None], task, app) == Limits(10, 5)
    assert effective([3, 1], task, app) == Limits(3, 1)
    assert effective("junk", task, app) == Limits(10, 5)
    assert effective({"a": 1}, Limits(), Limits()) == Limits() == effective([None, None, 3], Limits(), Limits())
    settings = Settings()
    settings.task_time_limit = -3  # type: ignore[assignment]
    with pytest.raises(ConfigurationError, match="task_time_limit"):
        app_limits(settings)


def test_limits_travel_in_celerys_timelimit_header(app: TaskQ) -> None:
    @app.task(time_limit=30, soft_time_limit=20)
    def limited() -> None: ...

    limited.delay()
    limited.apply_async(time_limit=5)
    with pytest.raises(ConfigurationError, match="soft_time_limit"):
        limited.apply_async(soft_time_limit=-1)
    first, second = app.broker.fetch(["celery"], 2, 1)
    assert first.envelope is not None and second.envelope is not None
    assert first.envelope.headers["timelimit"] == [30, 20]
    assert second.envelope.headers["timelimit"] == [5, 20]


def test_the_alarm_raises_in_the_main_thread_then_the_hard_limit() -> None:
    alarm = Alarm(hard_in_process=True)
    alarm.arm(Limits(hard=0.4, soft=0.1))
    started = time.monotonic()
    with pytest.raises(SoftTimeLimitExceeded, match=r"soft time limit \(0.1s\)"):
        time.sleep(5)
    with pytest.raises(TimeLimitExceeded, match=r"hard time limit \(0.4s\)"):
        time.sleep(5)
    alarm.disarm()
    assert time.monotonic() - started < 2


def test_the_alarm_raises_in_another_thread_between_bytecodes_and_disarms_cleanly() -> None:
    seen: list[BaseException] = []

    def task() -> None:
        alarm = Alarm(hard_in_process=False)  # a prefork child: the hard limit is not its job
        alarm.arm(Limits(hard=0.05, soft=0.1))
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
        except SoftTimeLimitExceeded as exc:
            seen.append(exc)
        alarm.disarm()
        alarm.arm(Limits(soft=0.05))
        alarm.disarm()  # before it fires: nothing is raised afterwards
        time.sleep(0.2)

    thread = threading.Thread(target=task)
    thread.start()
    thread.join(10)
    assert len(seen) == 1 and isinstance(seen[0], SoftTimeLimitExceeded)


def test_a_forked_child_publishes_its_running_task_and_deadline() -> None:
    slots = ChildSlots(2)
    pid = os.fork()
    if pid == 0:
        slots.publish_task(1, "task-1", 123.5, 2.0)
        slots.publish_task(0, "x" * 200, 99.0, 1.0)  # too long to publish: no deadline from outside
        os._exit(0)
    os.waitpid(pid, 0)
    assert slots.running(1) == Running("task-1", 123.5, 2.0)
    assert slots.running(0) is None
    slots.clear(1)
    assert slots.running(1) is None


def test_shared_clocks_space_calls_across_processes() -> None:
    clocks = SharedClocks()
    first = clocks.reserve("t", 0.5)
    pid = os.fork()
    if pid == 0:
        clocks.reserve("t", 0.5)
        os._exit(0)
    os.waitpid(pid, 0)
    assert clocks.reserve("t", 0.5) >= first + 1.0 - 0.001


def test_a_rate_limited_message_waits_as_a_delayed_copy_and_others_run(app: TaskQ) -> None:
    ran: list[str] = []

    @app.task(rate_limit="5/s")
    def slow(key: str) -> None:
        ran.append(key)

    @app.task
    def fast() -> str:
        return "fast"

    with inline_worker(app):
        started = time.monotonic()
        limited = [slow.delay(str(i)) for i in range(4)]
        assert fast.delay().get(timeout=5) == "fast"
        fast_took = time.monotonic() - started
        for r in limited:
            r.get(timeout=10)
        took = time.monotonic() - started
    assert sorted(ran) == ["0", "1", "2", "3"] and took >= 0.55 and fast_took < 0.5


def test_set_rate_changes_a_rate_at_run_time(app: TaskQ) -> None:
    @app.task
    def free() -> None: ...

    limiter = RateLimiter(app)
    assert limiter.wait(free.name, "a") == 0 and limiter.wait(free.name, "b") == 0
    limiter.set_rate(free.name, "1/s")
    assert limiter.wait(free.name, "c") == 0
    assert 0.9 < limiter.wait(free.name, "d") <= 1.0
    assert 0 < limiter.wait(free.name, "d") <= 1.0  # its reservation, not a second one
    limiter.set_rate(free.name, None)
    assert limiter.wait(free.name, "e") == 0


@pytest.fixture(params=["memory", "sqlite", "redis"])
def revocations(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Revocations]:
    if request.param == "redis":
        from tests.contract.redis_factories import delete_prefixed
        from tests.servers import require_redis

        url, prefix = require_redis(), f"taskq-rv-{uuid.uuid4().hex[:12]}:"
        app = TaskQ("rv", broker=url, backend="memory://rv", broker_transport_options={"global_keyprefix": prefix})
        yield Revocations(app)
        delete_prefixed(url, prefix)
        return
    url = f"sqlite:///{tmp_path}/rv.db" if request.param == "sqlite" else f"memory://{uuid.uuid4().hex}"
    yield Revocations(TaskQ("rv", broker=url, backend=url))


def test_revocations_are_kept_until_they_expire(revocations: Revocations) -> None:
    a, b, c = (uuid.uuid4().hex for _ in range(3))
    revocations.revoke(a)
    revocations.revoke([b], terminate=True)
    revocations.revoke(c, expires=0.2)
    assert revocations.is_revoked(a) and revocations.is_revoked(c) and not revocations.is_revoked("other")
    assert {b} <= revocations.terminated() and a not in revocations.terminated()
    assert revocations.app.AsyncResult(a).state == states.REVOKED
    time.sleep(0.3)
    listed = {r.task_id for r in revocations.list()}
    assert {a, b} <= listed and c not in listed
    for bad in ([], [""], "x"):
        with pytest.raises(ConfigurationError):
            revocations.revoke(bad, expires=-1 if bad == "x" else None)


def count_reads(revocations: Revocations, monkeypatch: pytest.MonkeyPatch, on_read: Callable[[], None]) -> None:
    """Call ``on_read`` at each read of the store's set (the store itself still answers)."""
    store = revocations.store
    active = store.active

    def counted(now: float) -> list[Revoked]:
        on_read()
        return active(now)

    monkeypatch.setattr(store, "active", counted)


def test_a_used_copy_is_read_ahead_and_an_unused_one_is_not(
    revocations: Revocations, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    count_reads(revocations, monkeypatch, lambda: reads.append(1))
    other = Revocations(revocations.app)  # another worker's view: its revoke leaves ours as it was
    assert not revocations.is_revoked("x") and len(reads) == 1  # the first look reads
    revocations.refresh_ahead()
    assert len(reads) == 1  # fresh: nothing to read ahead
    time.sleep(REFRESH / 2)
    revoked = other.revoke(uuid.uuid4().hex)[0]
    revocations.refresh_ahead()  # used and half its life old: read now...
    assert len(reads) == 2
    assert revocations.is_revoked(revoked) and len(reads) == 2  # ...so the next look reads nothing
    time.sleep(REFRESH / 2)
    revocations.refresh_ahead()
    assert len(reads) == 3
    time.sleep(REFRESH / 2)
    revocations.refresh_ahead()  # not looked at since the last read (an idle worker): no read
    assert len(reads) == 3


def test_tasks_that_come_while_the_worker_idles_start_without_a_revocations_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task 30 ms after the last one: the revocations were read between the two, not while
    it waited to start (a round trip on its way)."""
    from tests.contract.redis_factories import delete_prefixed
    from tests.servers import require_redis

    url, prefix = require_redis(), f"taskq-rvi-{uuid.uuid4().hex[:12]}:"
    app = TaskQ(
        "rvi", broker=url, backend=f"memory://{uuid.uuid4().hex}", task_ignore_result=True,
        broker_transport_options={"global_keyprefix": prefix},
    )  # fmt: skip
    ran: list[int] = []
    app.task(name="tick")(lambda: ran.append(1))
    handling, reads = [False], {True: 0, False: 0}  # reads while a task was being handled, and not
    handle = TaskRunner.handle

    def handled(runner: TaskRunner, delivery: Delivery) -> None:
        handling[0] = True
        try:
            handle(runner, delivery)
        finally:
            handling[0] = False

    monkeypatch.setattr(TaskRunner, "handle", handled)
    try:
        with inline_worker(app) as consumer:
            count_reads(
                consumer.runner.revocations, monkeypatch, lambda: reads.__setitem__(handling[0], reads[handling[0]] + 1)
            )
            count = int(4 * REFRESH / 0.03)  # over 4 x REFRESH: 5 reads on the tasks' way without read-ahead
            for _ in range(count):
                app.send_task("tick")
                time.sleep(0.03)
            deadline = time.monotonic() + 10
            while len(ran) < count and time.monotonic() < deadline:
                time.sleep(0.01)
        assert len(ran) == count
        # The first task's (no copy was read before it), and one more at most should this machine
        # stall the loop for REFRESH / 2 between two tasks.
        assert reads[True] <= 2, reads
        assert reads[False] >= 3, reads  # still read every REFRESH or so, ahead
    finally:
        app.close()
        delete_prefixed(url, prefix)


def test_a_revoked_waiting_task_is_skipped_and_ends_revoked(app: TaskQ) -> None:
    ran: list[int] = []

    @app.task
    def victim() -> None:
        ran.append(1)

    r = victim.apply_async(countdown=0.3)
    r.revoke()
    with inline_worker(app):
        with pytest.raises(TaskRevokedError):
            r.get(timeout=5)
        assert victim.apply_async().get(timeout=5) is None
        deadline = time.monotonic() + 5  # past the countdown the revoked one is fetched and skipped
        while app.broker.queue_length("celery") and time.monotonic() < deadline:
            time.sleep(0.02)
    assert ran == [1] and app.broker.queue_length("celery") == 0


def test_sqlite_revocations_need_no_server(tmp_path: Path) -> None:
    store = SQLiteRevocations(f"sqlite:///{tmp_path}/x.db")
    assert store.active(time.time()) == []
    store.close()


def test_aget_never_blocks_the_running_loop(app: TaskQ) -> None:
    import asyncio

    @app.task
    def slow() -> str:
        time.sleep(0.5)
        return "done"

    async def main() -> tuple[str, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(ticker())
        value = await slow.delay().aget(timeout=5)
        beat.cancel()
        return value, ticks

    with inline_worker(app):
        value, ticks = asyncio.run(main())
    assert value == "done" and ticks >= 20  # the loop ran on while the result was awaited
