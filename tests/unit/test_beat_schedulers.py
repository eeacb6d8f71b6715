"""Run modes over the one core: blocking, background thread, asyncio, worker-embedded."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskq.app import TaskQ
from taskq.beat import AsyncIOScheduler, BackgroundScheduler, BlockingScheduler
from taskq.beat.core import hook as ev
from taskq.beat.core.beat_schedule import periodic
from taskq.beat.core.schedules import every
from taskq.beat.core.submit import ENTRY_HEADER
from taskq.beat.schedulers import SchedulerAlreadyRunningError, SchedulerNotRunningError
from taskq.beat.schedulers.background import start_embedded
from taskq.errors import ConfigurationError


def make_app() -> TaskQ:
    name = uuid.uuid4().hex
    app = TaskQ("modes", broker=f"memory://{name}", backend="none", task_default_queue="q-" + name)
    app.conf.beat_schedule = {"fast": {"task": "modes.fast", "schedule": every(seconds=0.1)}}
    return app


def drain(app: TaskQ) -> list[dict[str, Any]]:
    deliveries = app.broker.fetch([app.conf.task_default_queue], 1000, 0)
    app.broker.ack(deliveries)
    return [d.envelope.headers for d in deliveries if d.envelope is not None]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_background_scheduler_start_returns_at_once_and_fires() -> None:
    app = make_app()
    scheduler = BackgroundScheduler(app=app, store="memory://")
    events: list[str] = []
    scheduler.add_beat_listener(lambda e: events.append(e.kind))
    started = time.monotonic()
    scheduler.start()
    assert time.monotonic() - started < 0.5 and scheduler.running
    with pytest.raises(SchedulerAlreadyRunningError):
        scheduler.start()
    got: list[dict[str, Any]] = []
    wait_for(lambda: got.extend(drain(app)) or len(got) >= 3)
    scheduler.shutdown()
    assert not scheduler.running
    assert {h[ENTRY_HEADER] for h in got} == {"fast"}
    assert events[0] == ev.STARTED and events[-1] == ev.STOPPED and ev.SUBMITTED in events
    with pytest.raises(SchedulerNotRunningError):
        scheduler.shutdown()


def test_blocking_scheduler_runs_until_shutdown() -> None:
    app = make_app()
    scheduler = BlockingScheduler(app=app, store="memory://")
    thread = threading.Thread(target=scheduler.start)
    thread.start()
    wait_for(lambda: drain(app))
    scheduler.shutdown()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_asyncio_scheduler_runs_on_the_running_loop() -> None:
    app = make_app()

    async def main() -> list[dict[str, Any]]:
        scheduler = AsyncIOScheduler(app=app, store="memory://")
        scheduler.start()
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the event loop stays free while beat waits
            got.extend(drain(app))
        scheduler.shutdown()
        await asyncio.wait_for(scheduler.wait_closed(), 5)
        return got

    assert len(asyncio.run(main())) >= 3


def test_asyncio_scheduler_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        AsyncIOScheduler(app=make_app(), store="memory://").start()


def test_embedded_beat_for_the_worker(tmp_path: Path) -> None:
    app = make_app()
    scheduler = start_embedded(app, store=f"sqlite:///{tmp_path / 'beat.db'}", lock_ttl=2.0)
    try:
        wait_for(lambda: drain(app))
    finally:
        scheduler.shutdown()


def test_periodic_decorator_registers_task_and_entry() -> None:
    app = make_app()

    @periodic(app, every(minutes=5), kwargs={"n": 1}, coalesce=False)
    def heartbeat(n: int) -> int:
        return n

    scheduler = BackgroundScheduler(app=app, store="memory://")
    names = {e.id: e for e in scheduler.core.config_entries}
    task_name = heartbeat.name  # type: ignore[attr-defined]
    assert task_name in app.tasks and set(names) == {"fast", task_name}
    assert names[task_name].kwargs == {"n": 1} and names[task_name].policy.coalesce is False
    with pytest.raises(ConfigurationError, match="out of range"):
        periodic(app, "61 * * * *")


def test_scheduler_without_app_uses_a_memory_job_store() -> None:
    # As APScheduler: no app, plain callables in-process (tests/unit/test_apscheduler_*.py cover the API)
    scheduler = BackgroundScheduler()
    assert scheduler.app is None and "default" not in scheduler._jobstores  # created at start()


def test_a_job_added_to_a_running_scheduler_runs_without_delay() -> None:
    # Given a running scheduler whose only entry is far away
    name = uuid.uuid4().hex
    app = TaskQ("modes", broker=f"memory://{name}", backend="none", task_default_queue="q-" + name)
    app.conf.beat_schedule = {"slow": {"task": "modes.slow", "schedule": every(hours=1)}}
    scheduler = BackgroundScheduler(app=app, store="memory://")
    scheduler.start()
    try:
        # When a 0.2-second job is added through the API
        added_at = time.monotonic()
        scheduler.add_job("modes.added", every(seconds=0.2), id="added")
        # Then its first run is sent after one period, not after the sleeping hour
        headers = wait_for(lambda: drain(app), timeout=5)
        assert headers[0]["task"] == "modes.added"
        assert time.monotonic() - added_at < 1.0
        assert sorted(job.id for job in scheduler.get_jobs()) == ["added", "slow"]
    finally:
        scheduler.shutdown()


def test_several_embedded_beats_one_leads_and_nothing_is_sent_twice(tmp_path: Path) -> None:
    # Given three worker-embedded beats on one sqlite broker file (the store shares it)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    queue = "q-" + uuid.uuid4().hex
    apps = [TaskQ("modes", broker=url, backend="none", task_default_queue=queue) for _ in range(3)]
    sent_by: list[list[str]] = [[], [], []]
    for app in apps:
        app.conf.beat_schedule = {"fast": {"task": "modes.fast", "schedule": every(seconds=0.1), "coalesce": False}}
    beats = [BackgroundScheduler(app=app, lock_ttl=1.0) for app in apps]  # what start_embedded builds
    for index, beat in enumerate(beats):
        beat.add_beat_listener(
            lambda e, sent=sent_by[index]: sent.extend(e.task_ids) if e.kind == ev.SUBMITTED else None
        )
        beat.start()
    try:
        # When they run side by side for a while
        got: list[dict[str, Any]] = []
        wait_for(lambda: got.extend(drain(apps[0])) or len(got) >= 15)
    finally:
        for beat in beats:
            beat.shutdown()
    got.extend(drain(apps[0]))
    # Then one of them sent everything, and each instant once
    assert sorted(len(sent) > 0 for sent in sent_by) == [False, False, True]
    instants = [h["taskq_beat_instant"] for h in got]
    assert len(set(instants)) == len(instants) >= 15
