"""Differential test: one scripted scenario, run on APScheduler 3.11 and on taskq, must
produce the same set of (event, job id or alias) pairs, APScheduler's habits included
(executor and job store added, and jobs added, before SCHEDULER_STARTED; a missed run is
SUBMITTED then MISSED; a finished date job is REMOVED; SCHEDULER_SHUTDOWN last).

Run on BackgroundScheduler with the threadpool and the processpool executor, and on
AsyncIOScheduler with the asyncio executor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import apscheduler.schedulers.asyncio as aps_asyncio
import apscheduler.schedulers.background as aps_background
import pytest

import taskq.beat as tq
from taskq.beat.events import EVENT_NAMES

Pair = tuple[str, Any]
DEADLINE = 15.0
GRACE = 30  # seconds: more than any start-up delay


def succeed() -> str:
    return "done"


def fail() -> None:
    raise ValueError("planned failure")


def overlap() -> None:
    time.sleep(0.35)  # longer than its 0.1 s interval: the next run finds it still running


def pair(event: Any) -> Pair:
    return EVENT_NAMES[event.code], getattr(event, "job_id", None) or event.alias


WAITED_FOR = {
    ("EVENT_JOB_EXECUTED", "ok"),
    ("EVENT_JOB_ERROR", "boom"),
    ("EVENT_JOB_MAX_INSTANCES", "overlap"),
    ("EVENT_JOB_EXECUTED", "overlap"),
    ("EVENT_JOB_MISSED", "late"),
}


def add_jobs(scheduler: Any) -> None:
    # Only "late" is meant to miss its run. The others get a grace time a slow start cannot
    # exhaust (a process pool starting its processes on a loaded machine takes seconds), so
    # neither library reports a MISSED that depends on the machine's load.
    now = datetime.now(timezone.utc)
    scheduler.add_job(succeed, "date", run_date=now + timedelta(seconds=0.3), id="ok", misfire_grace_time=GRACE)
    scheduler.add_job(fail, "date", run_date=now + timedelta(seconds=0.3), id="boom", misfire_grace_time=GRACE)
    scheduler.add_job(overlap, "interval", seconds=0.1, id="overlap", misfire_grace_time=GRACE)
    scheduler.add_job(succeed, "date", run_date=now - timedelta(hours=1), id="late")


def finish(scheduler: Any) -> None:
    scheduler.modify_job("overlap", name="renamed")
    scheduler.pause()
    scheduler.resume()
    scheduler.remove_all_jobs()


def run_threaded(make: Callable[..., Any], **options: Any) -> list[Pair]:
    # Given a scheduler with a listener and the scripted jobs
    events: list[Pair] = []
    scheduler = make(timezone="UTC", **options)
    scheduler.add_listener(lambda event: events.append(pair(event)))
    add_jobs(scheduler)
    # When it runs until every awaited outcome has happened, then is changed and stopped
    scheduler.start()
    deadline = time.monotonic() + DEADLINE
    while not WAITED_FOR <= set(events) and time.monotonic() < deadline:
        time.sleep(0.02)
    finish(scheduler)
    scheduler.shutdown(wait=True)
    return events


def run_asyncio(make: Callable[..., Any]) -> list[Pair]:
    async def scenario() -> list[Pair]:
        events: list[Pair] = []
        scheduler = make(timezone="UTC")
        scheduler.add_listener(lambda event: events.append(pair(event)))
        add_jobs(scheduler)
        scheduler.start()
        deadline = time.monotonic() + DEADLINE
        while not WAITED_FOR <= set(events) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        finish(scheduler)
        scheduler.shutdown(wait=True)
        if hasattr(scheduler, "wait_closed"):
            await asyncio.wait_for(scheduler.wait_closed(), 5)
        await asyncio.sleep(0.5)  # APScheduler's shutdown completes on the loop
        return events

    return asyncio.run(scenario())


def assert_same(theirs: list[Pair], ours: list[Pair]) -> None:
    # Then both report the same set of (event, job id or alias) pairs
    assert WAITED_FOR <= set(theirs), f"APScheduler did not finish the scenario: {sorted(set(theirs))}"
    missing, extra = set(theirs) - set(ours), set(ours) - set(theirs)
    assert not missing and not extra, f"taskq lacks {sorted(missing)}, adds {sorted(extra)}"
    # ... and taskq keeps APScheduler's order (APScheduler itself may report a missed run's
    # MISSED from its executor thread before its scheduler thread reports SUBMITTED)
    for events in (ours,):
        started = events.index(("EVENT_SCHEDULER_STARTED", None))
        before = {("EVENT_EXECUTOR_ADDED", "default"), ("EVENT_JOBSTORE_ADDED", "default")}
        before |= {("EVENT_JOB_ADDED", job) for job in ("ok", "boom", "overlap", "late")}
        assert before <= set(events[:started])
        assert events.index(("EVENT_JOB_SUBMITTED", "late")) < events.index(("EVENT_JOB_MISSED", "late"))
        assert events[-1] == ("EVENT_SCHEDULER_SHUTDOWN", None)


@pytest.mark.timeout(60)
def test_background_scheduler_with_threadpool_matches_apscheduler() -> None:
    assert_same(run_threaded(aps_background.BackgroundScheduler), run_threaded(tq.BackgroundScheduler))


@pytest.mark.timeout(60)
def test_background_scheduler_with_processpool_matches_apscheduler() -> None:
    # Configured as APScheduler documents it: the event for a configured executor fires
    # before any listener exists, so ("EVENT_EXECUTOR_ADDED", "default") is in neither set.
    def config() -> dict[str, Any]:  # a fresh dict each time: APScheduler pops keys from it
        return {"executors": {"default": {"type": "processpool", "max_workers": 2}}}

    theirs = run_threaded(aps_background.BackgroundScheduler, **config())
    ours = run_threaded(tq.BackgroundScheduler, **config())
    theirs.insert(0, ("EVENT_EXECUTOR_ADDED", "default"))  # for assert_same's ordering check only
    ours.insert(0, ("EVENT_EXECUTOR_ADDED", "default"))
    assert_same(theirs, ours)


@pytest.mark.timeout(60)
def test_asyncio_scheduler_with_asyncio_executor_matches_apscheduler() -> None:
    assert_same(run_asyncio(aps_asyncio.AsyncIOScheduler), run_asyncio(tq.AsyncIOScheduler))
