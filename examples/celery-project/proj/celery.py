"""The app, written as Celery's "First steps" and "Next steps" guides write it.

Its Celery form differs only in the import lines: ``from celery import Celery`` and
``from celery.schedules import crontab`` (tests/integration/test_celery_project.py runs both).
"""

import os

from taskq import Celery
from taskq.schedules import crontab

app = Celery(
    "proj",
    broker=os.environ.get("PROJ_BROKER_URL", "amqp://"),
    backend=os.environ.get("PROJ_RESULT_BACKEND", "rpc://"),
    include=["proj.tasks"],
)

# Settings under their Celery 3 names, as older projects still have them: taskq reads them with
# one warning each. (Celery refuses a mix of old and new names in one app, so all are old here.)
app.conf.update(
    CELERY_TASK_RESULT_EXPIRES=3600,
    # One task has a queue of its own; the worker consumes both: -Q celery,hipri
    CELERY_ROUTES={"proj.tasks.where": {"queue": "hipri"}},
    CELERYBEAT_SCHEDULE={
        "tick-every-minute": {
            "task": "proj.tasks.tick",
            "schedule": crontab(),
            "args": ("crontab",),
        },
    },
)


@app.on_after_configure.connect
def setup_periodic_tasks(sender, **kwargs):
    from proj.tasks import tick

    sender.add_periodic_task(2.0, tick.s("every 2 seconds"), name="tick every 2 seconds")


if __name__ == "__main__":
    app.start()
