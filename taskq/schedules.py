"""Celery's ``celery.schedules`` at ``taskq.schedules``: ``crontab``, ``schedule``, ``solar``
and ``maybe_schedule``, so a Celery project's beat imports move over by changing the package.

They build taskq's schedules (taskq/beat/core): ``schedule(10)`` is ``every(10)``,
``crontab`` and ``solar`` keep Celery's keywords and meanings. Where taskq differs: a
``schedule`` counts from when beat first stored the entry rather than from the last run
(beat computes the same instants in every process), and ``relative=True`` counts from the
Unix epoch, which rounds to the interval as Celery's does. ``nowfun`` and ``app`` are
accepted for Celery's signature and not used (beat's clock is injected, and the app's
timezone applies to crontab)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from taskq.beat.core.schedules import EPOCH, CronSchedule, Schedule, as_schedule, crontab, every
from taskq.beat.core.solar import solar

__all__ = ["crontab", "maybe_schedule", "schedule", "solar"]


def schedule(
    run_every: float | timedelta | None = None, relative: bool = False, nowfun: Any = None, app: Any = None
) -> every:
    """Every ``run_every`` (seconds or a timedelta), as Celery's ``schedule``."""
    period = timedelta(seconds=run_every) if isinstance(run_every, (int, float)) else run_every
    return every(period, anchor=EPOCH if relative else None)


def maybe_schedule(s: Any, relative: bool = False, app: Any = None) -> Schedule | None:
    """A number or timedelta as a ``schedule``; a schedule as it is; None stays None."""
    if s is None:
        return None
    if isinstance(s, (int, float, timedelta)) and not isinstance(s, bool):
        return schedule(s, relative)
    return as_schedule(s)


crontab_type = CronSchedule  # what isinstance(x, crontab) means in Celery: crontab() builds one
