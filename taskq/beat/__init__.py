"""Beat: the periodic scheduler (DESIGN.md section 7, docs/beat.md).

Pure schedules (``every``, ``crontab``, ``cron``, ``at``), one scheduling core, a schedule
store with a leader lock and an atomic per-instant claim, and thin run modes around it.
"""

from taskq.beat.entry import APSCHEDULER_DEFAULTS, CELERY_DEFAULTS, Entry, Policy
from taskq.beat.events import BeatEvent
from taskq.beat.exceptions import (
    ConflictingIdError,
    JobLookupError,
    SchedulerAlreadyRunningError,
    SchedulerNotRunningError,
)
from taskq.beat.schedulers import AsyncIOScheduler, BackgroundScheduler, BlockingScheduler
from taskq.beat.schedules import CronSchedule, Schedule, at, cron, crontab, every

__all__ = [
    "APSCHEDULER_DEFAULTS",
    "CELERY_DEFAULTS",
    "AsyncIOScheduler",
    "BackgroundScheduler",
    "BeatEvent",
    "BlockingScheduler",
    "ConflictingIdError",
    "CronSchedule",
    "Entry",
    "JobLookupError",
    "Policy",
    "Schedule",
    "SchedulerAlreadyRunningError",
    "SchedulerNotRunningError",
    "at",
    "cron",
    "crontab",
    "every",
]
