"""APScheduler 3's triggers (``taskq.beat.triggers.cron.CronTrigger`` and so on, the same
module paths), as taskq schedules: any of them may be given to ``add_job``."""

from taskq.beat.triggers.base import BaseTrigger, trigger_from_dict
from taskq.beat.triggers.calendarinterval import CalendarIntervalTrigger
from taskq.beat.triggers.combining import AndTrigger, OrTrigger
from taskq.beat.triggers.cron import CronTrigger
from taskq.beat.triggers.date import DateTrigger
from taskq.beat.triggers.interval import IntervalTrigger

# add_job(trigger="cron", ...) names, as APScheduler's entry points.
TRIGGERS: dict[str, type[BaseTrigger]] = {
    "date": DateTrigger,
    "interval": IntervalTrigger,
    "cron": CronTrigger,
    "calendarinterval": CalendarIntervalTrigger,
    "and": AndTrigger,
    "or": OrTrigger,
}

__all__ = [
    "TRIGGERS",
    "AndTrigger",
    "BaseTrigger",
    "CalendarIntervalTrigger",
    "CronTrigger",
    "DateTrigger",
    "IntervalTrigger",
    "OrTrigger",
    "trigger_from_dict",
]
