"""Beat: the periodic scheduler (DESIGN.md section 7, docs/beat.md).

Pure schedules (``every``, ``crontab``, ``cron``, ``at``), one scheduling core, a schedule
store with a leader lock and an atomic per-instant claim, and thin run modes around it.
"""

from taskq.beat import jobevents as _jobevents
from taskq.beat.entry import APSCHEDULER_DEFAULTS, CELERY_DEFAULTS, Entry, Policy
from taskq.beat.events import BeatEvent
from taskq.beat.exceptions import (
    ConflictingIdError,
    JobLookupError,
    SchedulerAlreadyRunningError,
    SchedulerNotRunningError,
)
from taskq.beat.flavours import GeventScheduler, QtScheduler, TornadoScheduler, TwistedScheduler
from taskq.beat.jobevents import *  # noqa: F403 - APScheduler's event codes and classes
from taskq.beat.jobs import Job
from taskq.beat.schedulers import AsyncIOScheduler, BackgroundScheduler, BaseScheduler, BlockingScheduler
from taskq.beat.schedules import CronSchedule, Schedule, at, cron, crontab, every

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
]
__all__ += _jobevents.__all__
