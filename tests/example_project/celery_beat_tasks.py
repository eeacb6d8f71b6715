"""A beat schedule written as a Celery project writes it (-A celery_beat_tasks:app): entries in
app.conf.beat_schedule with float seconds, a timedelta and a crontab, and add_periodic_task
both at import and inside an on_after_configure handler. Each run marks its word."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from example_tasks import mark

from taskq import TaskQ
from taskq.schedules import crontab, schedule

app = TaskQ("celery_beat_tasks")
app.conf.beat_schedule = {
    "float seconds": {"task": "celery_beat_tasks.say", "schedule": 0.5, "args": ("float",)},
    "timedelta": {"task": "celery_beat_tasks.say", "schedule": timedelta(seconds=0.5), "args": ("delta",)},
    "crontab": {"task": "celery_beat_tasks.say", "schedule": crontab(second="*"), "args": ("cron",)},
}


@app.task
def say(word: str) -> str:
    mark("start", word)
    return word


@app.on_after_configure.connect
def setup_periodic_tasks(sender: TaskQ, **kwargs: Any) -> None:
    sender.add_periodic_task(0.5, say.s("signal"), name="say in a signal handler")


app.add_periodic_task(schedule(0.5), say.s("module"), name="say at import")
