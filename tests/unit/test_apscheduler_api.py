"""APScheduler 3's API on taskq: names and meanings of the methods, Job objects, pending
jobs, configuration, listeners, export/import, and the broker executor that moves jobs
onto workers."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import taskq.beat as tq
from taskq import TaskQ
from taskq.beat.core.schedules import every
from taskq.beat.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
    EVENT_NAMES,
    JobExecutionEvent,
    SchedulerEvent,
)
from taskq.beat.executors.debug import DebugExecutor
from taskq.beat.triggers import CronTrigger, DateTrigger, IntervalTrigger
from taskq.errors import ConfigurationError
from tests.unit.conftest import inline_worker

FAR = datetime(2099, 1, 1, tzinfo=timezone.utc)


def noop(*args: Any, **kwargs: Any) -> None:
    """A module-level job."""


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_add_job_with_trigger_names_objects_and_taskq_schedules() -> None:
    scheduler = tq.BackgroundScheduler(timezone="Europe/Berlin")
    cron_job = scheduler.add_job(noop, "cron", hour=3, id="c")
    interval_job = scheduler.add_job(noop, IntervalTrigger(minutes=5), id="i")
    date_job = scheduler.add_job(noop, "date", run_date="2099-01-01 09:00:00", id="d")
    taskq_job = scheduler.add_job(noop, every(seconds=30), id="e")
    assert isinstance(cron_job.trigger, CronTrigger) and isinstance(date_job.trigger, DateTrigger)
    assert str(date_job.next_run_time) == "2099-01-01 09:00:00+01:00"  # naive: the scheduler's timezone
    assert interval_job.next_run_time is not None and taskq_job.next_run_time is not None
    assert cron_job.name == "noop" and cron_job.pending  # no job store before start(), as APScheduler
    assert cron_job.misfire_grace_time == 1.0 and cron_job.coalesce and cron_job.max_instances == 1
    with pytest.raises(ConfigurationError, match="unexpected add_job keyword"):
        scheduler.add_job(noop, IntervalTrigger(minutes=5), minutes=3)
    with pytest.raises(ConfigurationError, match="arguments do not match"):
        scheduler.add_job(lambda x: x, "interval", seconds=1, args=[1, 2])


def test_ids_lookups_and_errors() -> None:
    scheduler = tq.BackgroundScheduler()
    scheduler.add_job(noop, "date", run_date=FAR, id="x")
    with pytest.raises(tq.ConflictingIdError):
        scheduler.add_job(noop, "date", run_date=FAR, id="x")
    scheduler.add_job(noop, "date", run_date=FAR, id="x", replace_existing=True)
    with pytest.raises(tq.JobLookupError):
        scheduler.remove_job("nope")
    with pytest.raises(tq.SchedulerNotRunningError):
        scheduler.shutdown()
    scheduler.start(paused=True)
    try:
        assert scheduler.state == 2 and scheduler.running  # STATE_PAUSED, as APScheduler
        with pytest.raises(tq.SchedulerAlreadyRunningError):
            scheduler.start()
        with pytest.raises(tq.ConflictingIdError):
            scheduler.add_job(noop, "date", run_date=FAR, id="x")
        assert [job.id for job in scheduler.get_jobs()] == ["x"] and scheduler.get_job("nope") is None
    finally:
        scheduler.shutdown()
    assert scheduler.state == 0


def test_job_methods_modify_reschedule_pause_resume_remove() -> None:
    scheduler = tq.BackgroundScheduler(timezone="UTC")
    seen: list[tuple[str, Any]] = []
    scheduler.add_listener(lambda e: seen.append((EVENT_NAMES[e.code], getattr(e, "job_id", None))))
    scheduler.start()
    try:
        job = scheduler.add_job(noop, "interval", hours=1, id="j")
        job.modify(name="renamed", max_instances=3, args=[1])
        assert (job.name, job.max_instances, job.args) == ("renamed", 3, (1,))
        job.reschedule("cron", minute=15)
        assert isinstance(job.trigger, CronTrigger) and job.next_run_time and job.next_run_time.minute == 15
        job.pause()
        assert job.next_run_time is None
        job.resume()
        assert job.next_run_time is not None
        with pytest.raises(AttributeError, match="not modifiable"):
            job.modify(colour="blue")
        job.remove()
        assert scheduler.get_jobs() == []
    finally:
        scheduler.shutdown()
    assert seen.count(("EVENT_JOB_MODIFIED", "j")) == 4 and ("EVENT_JOB_REMOVED", "j") in seen


def test_scheduled_job_decorator_print_export_import(tmp_path: Path) -> None:
    scheduler = tq.BackgroundScheduler(timezone="UTC")

    @scheduler.scheduled_job("cron", day_of_week="mon-fri", hour=9, id="weekday")
    def report() -> None:
        """Decorated functions stay plain functions."""

    assert callable(report) and scheduler.get_job("weekday") is not None
    scheduler.add_job(noop, "interval", minutes=10, id="ten", args=[1])
    out = io.StringIO()
    scheduler.print_jobs(out=out)
    assert "Pending jobs:" in out.getvalue() and "noop (trigger: interval[0:10:00]" in out.getvalue()
    # A nested function has no import reference: it cannot be exported.
    with pytest.raises(ValueError, match="no import reference"):
        scheduler.export_jobs(str(tmp_path / "jobs.json"))
    scheduler.remove_job("weekday")
    scheduler.export_jobs(str(tmp_path / "jobs.json"))
    document = json.loads((tmp_path / "jobs.json").read_text())
    assert [job["id"] for job in document["jobs"]] == ["ten"]
    other = tq.BackgroundScheduler(timezone="UTC")
    other.import_jobs(str(tmp_path / "jobs.json"))
    imported = other.get_job("ten")
    assert imported is not None and imported.args == (1,) and imported.func is noop


def test_configuration_as_apscheduler_reads_it() -> None:
    scheduler = tq.BackgroundScheduler(
        {
            "apscheduler.timezone": "Europe/Paris",
            "apscheduler.job_defaults.coalesce": "false",
            "apscheduler.job_defaults.max_instances": "3",
            "apscheduler.executors.default": {"type": "threadpool", "max_workers": "4"},
        },
        jobstores={"mem": {"type": "memory"}},
        executors={"inline": DebugExecutor()},
    )
    job = scheduler.add_job(noop, "interval", minutes=1, jobstore="mem")
    assert (job.coalesce, job.max_instances) == (False, 3)
    assert str(scheduler.timezone_info) == "Europe/Paris"
    assert set(scheduler._executors) == {"default", "inline"} and set(scheduler._jobstores) == {"mem"}
    with pytest.raises(ConfigurationError, match="unknown scheduler option"):
        tq.BackgroundScheduler(colour="blue")
    with pytest.raises(ValueError, match="already has an executor"):
        scheduler.add_executor("debug", "inline")
    scheduler.remove_executor("inline")
    scheduler.add_jobstore("memory", "second")
    scheduler.remove_jobstore("second")


def test_a_listener_that_raises_never_stops_the_scheduler(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = tq.BackgroundScheduler(timezone="UTC")
    executed: list[Any] = []

    def broken(event: SchedulerEvent) -> None:
        raise RuntimeError("listener bug")

    scheduler.add_listener(broken)
    scheduler.add_listener(lambda e: executed.append(e), EVENT_JOB_EXECUTED)
    scheduler.add_job(noop, "interval", seconds=0.1, id="tick")
    scheduler.start()
    try:
        wait_for(lambda: len(executed) >= 2)
    finally:
        scheduler.shutdown()
    assert "Error notifying listener" in caplog.text
    scheduler.remove_listener(broken)


def test_max_instances_counts_unfinished_runs_and_a_finished_date_job_goes() -> None:
    scheduler = tq.BackgroundScheduler(timezone="UTC")
    codes: list[str] = []
    scheduler.add_listener(lambda e: codes.append(EVENT_NAMES[e.code]))
    scheduler.add_job(time.sleep, "interval", args=[0.3], seconds=0.1, id="slow", max_instances=2)
    scheduler.add_job(noop, "date", run_date=datetime.now(timezone.utc) + timedelta(seconds=0.1), id="once")
    scheduler.start()
    try:
        wait_for(lambda: "EVENT_JOB_MAX_INSTANCES" in codes and scheduler.get_job("once") is None)
    finally:
        scheduler.shutdown()
    assert "EVENT_JOB_REMOVED" in codes


def broker_app() -> TaskQ:
    name = uuid.uuid4().hex
    return TaskQ("aps", broker=f"memory://{name}", backend=f"memory://{name}")


def test_broker_executor_enqueues_tasks_and_reports_the_workers_outcome() -> None:
    # Given an app with a task, and a scheduler that sends it to workers
    app = broker_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def explode() -> None:
        raise KeyError("worker side")

    scheduler = tq.BackgroundScheduler(app=app, store="memory://", timezone="UTC")
    outcomes: list[JobExecutionEvent] = []
    submitted: list[str] = []
    scheduler.add_listener(lambda e: outcomes.append(e), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.add_listener(lambda e: submitted.append(e.job_id), EVENT_JOB_SUBMITTED)
    soon = datetime.now(timezone.utc) + timedelta(seconds=0.1)
    scheduler.add_job(add, "date", run_date=soon, args=[2, 3], id="sum", executor="broker")
    scheduler.add_job(explode, "date", run_date=soon, id="explode", executor="broker")
    # When a worker runs what the scheduler enqueued
    with inline_worker(app):
        scheduler.start()
        try:
            wait_for(lambda: len(outcomes) >= 2)
        finally:
            scheduler.shutdown()
    # Then EXECUTED carries the worker's return value and ERROR its exception
    by_job = {event.job_id: event for event in outcomes}
    assert by_job["sum"].code == EVENT_JOB_EXECUTED and by_job["sum"].retval == 5
    assert by_job["explode"].code == EVENT_JOB_ERROR and isinstance(by_job["explode"].exception, KeyError)
    assert sorted(submitted) == ["explode", "sum"]
    assert "broker" in scheduler._executors


def test_broker_executor_refuses_plain_callables_and_default_runs_tasks_in_process() -> None:
    app = broker_app()

    @app.task
    def hello() -> str:
        return "hi"

    scheduler = tq.BackgroundScheduler(app=app, store="memory://", timezone="UTC")
    with pytest.raises(ConfigurationError, match="plain callable"):
        scheduler.add_job(noop, "interval", seconds=1, executor="broker")
    results: list[Any] = []
    scheduler.add_listener(lambda e: results.append(e.retval), EVENT_JOB_EXECUTED)
    scheduler.add_job(hello, "interval", seconds=0.1, id="local")  # executor "default": runs here
    scheduler.start()
    try:
        wait_for(lambda: "hi" in results)
    finally:
        scheduler.shutdown()


def test_beat_schedule_entries_fire_the_same_events() -> None:
    # Given an app whose configuration schedules a task
    app = broker_app()
    app.conf.beat_schedule = {"configured": {"task": "aps.configured", "schedule": every(seconds=0.1)}}
    scheduler = tq.BackgroundScheduler(app=app, store="memory://", timezone="UTC")
    seen: list[tuple[str, Any]] = []
    scheduler.add_listener(lambda e: seen.append((EVENT_NAMES[e.code], getattr(e, "job_id", None) or e.alias)))
    # When the scheduler runs
    scheduler.start()
    try:
        wait_for(lambda: ("EVENT_JOB_SUBMITTED", "configured") in seen)
    finally:
        scheduler.shutdown()
    # Then the entry was ADDED and SUBMITTED through the broker executor, like an API job
    assert ("EVENT_JOB_ADDED", "configured") in seen and ("EVENT_EXECUTOR_ADDED", "broker") in seen


def test_a_trigger_without_a_timezone_takes_the_schedulers() -> None:
    scheduler = tq.BackgroundScheduler(timezone="Europe/Berlin")
    job = scheduler.add_job(noop, CronTrigger.from_crontab("0 9 * * 0-4"))
    explicit = scheduler.add_job(noop, CronTrigger(hour=9, timezone="UTC"))
    naive = scheduler.add_job(noop, DateTrigger(datetime(2099, 1, 1, 9, 0)))
    assert job.next_run_time is not None and job.next_run_time.weekday() < 5  # 0-4: Monday to Friday
    assert job.next_run_time.hour == 9 and str(job.next_run_time.tzinfo) == "Europe/Berlin"
    assert explicit.next_run_time is not None and explicit.next_run_time.astimezone(timezone.utc).hour == 9
    assert str(naive.next_run_time) == "2099-01-01 09:00:00+01:00"


def test_a_listener_may_shut_the_scheduler_down() -> None:
    # As in APScheduler's examples: a listener (in the job's thread) stops the scheduler
    scheduler = tq.BlockingScheduler(timezone="UTC")
    scheduler.add_job(noop, "interval", seconds=0.1)
    scheduler.add_listener(lambda event: scheduler.shutdown(), EVENT_JOB_EXECUTED)
    started = time.monotonic()
    scheduler.start()
    assert not scheduler.running and time.monotonic() - started < 5


def test_a_scheduler_starts_again_after_shutdown_and_survives_a_refusing_executor() -> None:
    scheduler = tq.BackgroundScheduler(timezone="UTC")
    executed: list[Any] = []
    missed: list[Any] = []
    scheduler.add_listener(lambda e: executed.append(e.job_id), EVENT_JOB_EXECUTED)
    scheduler.add_listener(lambda e: missed.append(e.job_id), 1 << 14)  # EVENT_JOB_MISSED
    scheduler.add_job(noop, "interval", seconds=0.1, id="again")
    for _ in range(2):
        before = len(executed)
        scheduler.start()
        try:
            wait_for(lambda before=before: len(executed) > before)  # type: ignore[misc]
        finally:
            scheduler.shutdown()

    class Refusing(DebugExecutor):
        def _do_submit(self, run: Any) -> None:
            raise RuntimeError("full")

    scheduler.add_executor(Refusing(), "refusing")
    scheduler.add_job(noop, "interval", seconds=0.1, id="refused", executor="refusing")
    scheduler.start()
    try:
        wait_for(lambda: "refused" in missed and executed.count("again") >= 4)
    finally:
        scheduler.shutdown()
