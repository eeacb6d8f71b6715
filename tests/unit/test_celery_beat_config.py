"""Beat configured as Celery users write it: taskq.schedules, add_periodic_task (also inside
an on_after_configure handler), and the app signals fired in Celery's order."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from celery import Celery

from taskq import TaskQ
from taskq.beat.core.beat_schedule import entries_from_app
from taskq.beat.core.schedules import EPOCH, CronSchedule, every
from taskq.schedules import crontab, maybe_schedule, schedule, solar

# Celery 5.7 warns that task-attribute routing goes away in Celery 6 (its Task class keeps it).
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.CDeprecationWarning")


def test_schedules_import_paths() -> None:
    assert schedule(10) == every(10)
    assert schedule(timedelta(minutes=1), relative=True) == every(60, anchor=EPOCH)
    assert maybe_schedule(5.0) == every(5)
    assert maybe_schedule(None) is None
    assert isinstance(maybe_schedule(crontab(minute=0)), CronSchedule)
    assert solar("sunrise", 1, 2).event == "sunrise"
    # relative: fires on multiples of the interval, as Celery's rounding does
    after = datetime(2026, 1, 1, 10, 17, 31, tzinfo=timezone.utc)
    assert schedule(3600, relative=True).next_fire(after) == datetime(2026, 1, 1, 11, tzinfo=timezone.utc)


def make_pair() -> tuple[TaskQ, Celery]:
    ours = TaskQ("proj", broker="memory://")
    theirs = Celery("proj", broker="memory://", set_as_current=False)
    for app in (ours, theirs):

        @app.task(name="proj.say")
        def say(word: str, times: int = 1) -> str:
            return word * times

    return ours, theirs


def test_add_periodic_task_makes_the_entries_celery_makes() -> None:
    ours, theirs = make_pair()
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((10.0, "s:hello"), {"name": "say hello"}),
        ((timedelta(seconds=30), "s:hi"), {"expires": 10, "queue": "beat"}),
        ((crontab(minute="*/5"), "s:cron"), {"name": "every five", "priority": 3}),
        ((60, "task"), {"args": ("x",), "kwargs": {"times": 2}}),
    ]
    keys = []
    for app in (ours, theirs):
        say = app.tasks["proj.say"]
        made = []
        for (when, what), options in calls:
            sig = say if what == "task" else say.s(what[2:])
            made.append(app.add_periodic_task(when, sig, **options))
        keys.append(made)
    assert keys[0] == keys[1]
    ours.configure()  # Celery configures on its first read of app.conf; taskq when a worker or beat starts
    theirs_schedule = theirs.conf.beat_schedule
    for key in keys[0]:
        mine, celery_entry = ours.conf.beat_schedule[key], theirs_schedule[key]
        for field in ("task", "kwargs", "options"):
            assert mine[field] == celery_entry[field], (key, field)
        assert list(mine["args"]) == list(celery_entry["args"])
    # and beat reads them
    entries = {e.id: e for e in entries_from_app(ours)}
    assert entries["say hello"].args == ("hello",) and entries["say hello"].schedule == every(10)
    assert entries["proj.say('hi')"].options == {"expires": 10, "queue": "beat"}


def test_signals_fire_once_in_celerys_order_and_handlers_add_periodic_tasks() -> None:
    app = TaskQ("proj", broker="memory://")
    seen: list[str] = []

    @app.task(name="proj.say")
    def say(word: str) -> str:
        return word

    @app.on_configure.connect
    def configuring(sender: TaskQ, **kwargs: Any) -> None:
        seen.append("configure")

    @app.on_after_configure.connect
    def setup_periodic_tasks(sender: TaskQ, **kwargs: Any) -> None:
        assert kwargs["source"] is sender.conf
        seen.append("after_configure")
        sender.add_periodic_task(10.0, say.s("hello"), name="add every 10")

    @app.on_after_finalize.connect
    def finalized(sender: TaskQ, **kwargs: Any) -> None:
        seen.append("after_finalize")
        sender.add_periodic_task(crontab(minute=0, hour=4), say.s("late"), name="nightly")

    app.add_periodic_task(5, say.s("early"), name="early")  # before configure: waits
    assert "early" not in app.conf.beat_schedule
    app.finalize()
    app.finalize()
    assert seen == ["configure", "after_configure", "after_finalize"]
    assert {"early", "add every 10", "nightly"} <= set(app.conf.beat_schedule)
    assert {e.id for e in entries_from_app(app)} >= {"early", "add every 10", "nightly"}


def test_unnamed_duplicate_warns_like_celery(caplog: pytest.LogCaptureFixture) -> None:
    app = TaskQ("proj", broker="memory://")
    app.configure()

    @app.task(name="proj.say")
    def say(word: str) -> str:
        return word

    app.add_periodic_task(1, say.s("a"))
    app.add_periodic_task(2, say.s("a"))
    assert "shadowed a previous unnamed periodic task" in caplog.text
    assert app.conf.beat_schedule["proj.say('a')"]["schedule"] == 2


def test_beat_schedule_in_celerys_forms() -> None:
    from celery.schedules import crontab as celery_crontab
    from celery.schedules import schedule as celery_schedule

    app = TaskQ("proj", broker="memory://")
    app.conf.beat_schedule = {
        "float": {"task": "proj.say", "schedule": 2.5, "args": ("a",)},
        "delta": {"task": "proj.say", "schedule": timedelta(minutes=1), "relative": True},
        "cron": {"task": "proj.say", "schedule": crontab(hour=7, minute=30, day_of_week=1)},
        "solar": {"task": "proj.say", "schedule": solar("sunset", 52.5, 13.4)},
        "celery-cron": {"task": "proj.say", "schedule": celery_crontab(minute="*/15")},
        "celery-every": {"task": "proj.say", "schedule": celery_schedule(timedelta(seconds=45))},
    }
    entries = {e.id: e for e in entries_from_app(app)}
    assert entries["float"].schedule == every(2.5)
    assert entries["delta"].schedule == every(60, anchor=EPOCH)
    assert entries["solar"].schedule == solar("sunset", 52.5, 13.4)
    assert entries["celery-every"].schedule == every(45)
    monday = datetime(2026, 3, 2, 7, 0, tzinfo=timezone.utc)
    assert entries["cron"].schedule.next_fire(monday) == datetime(2026, 3, 2, 7, 30, tzinfo=timezone.utc)
