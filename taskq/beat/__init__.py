"""Beat: the periodic scheduler (DESIGN.md section 7, docs/beat.md, docs/architecture.md).

Two layers. ``taskq.beat.core``: pure schedules (``every``, ``crontab``, ``cron``, ``at``), one
scheduling core, schedule stores with a leader lock and an atomic per-instant claim. Around
it, APScheduler 3's API at APScheduler's module paths (``schedulers``, ``job``, ``jobstores``,
``executors``, ``triggers``, ``events``): the run modes are thin flavours of one scheduler.
"""

from taskq.beat import events as _events
from taskq.beat.core.entry import APSCHEDULER_DEFAULTS, CELERY_DEFAULTS, Entry, Policy
from taskq.beat.core.errors import ConflictingIdError, JobLookupError
from taskq.beat.core.hook import BeatEvent
from taskq.beat.core.schedules import CronSchedule, Schedule, at, cron, crontab, every
from taskq.beat.core.solar import solar
from taskq.beat.events import *  # noqa: F403 - APScheduler's event codes and classes
from taskq.beat.job import Job
from taskq.beat.schedulers import SchedulerAlreadyRunningError, SchedulerNotRunningError
from taskq.beat.schedulers.asyncio import AsyncIOScheduler
from taskq.beat.schedulers.background import BackgroundScheduler
from taskq.beat.schedulers.base import BaseScheduler
from taskq.beat.schedulers.blocking import BlockingScheduler
from taskq.beat.schedulers.gevent import GeventScheduler
from taskq.beat.schedulers.qt import QtScheduler
from taskq.beat.schedulers.tornado import TornadoScheduler
from taskq.beat.schedulers.twisted import TwistedScheduler

__all__ = [
    "APSCHEDULER_DEFAULTS",
    "CELERY_DEFAULTS",
    "AsyncIOScheduler",
    "BackgroundScheduler",
    "BaseScheduler",
    "BeatEvent",
    "BlockingScheduler",
    "ConflictingIdError",
    "CronSchedule",
    "Entry",
    "GeventScheduler",
    "Job",
    "JobLookupError",
    "Policy",
    "QtScheduler",
    "Schedule",
    "SchedulerAlreadyRunningError",
    "SchedulerNotRunningError",
    "TornadoScheduler",
    "TwistedScheduler",
    "at",
    "cron",
    "crontab",
    "every",
    "solar",
]
__all__ += _events.__all__
