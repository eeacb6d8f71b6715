"""Beat: the periodic scheduler (DESIGN.md section 7).

Pure schedules (``every``, ``crontab``, ``cron``, ``at``), one scheduling core, a schedule
store with a leader lock and an atomic per-instant claim, and thin run modes around it.
"""

from taskq.beat.schedules import CronSchedule, Schedule, at, cron, crontab, every

__all__ = ["CronSchedule", "Schedule", "at", "cron", "crontab", "every"]
