"""CronTrigger with APScheduler 3's fields and meanings, on taskq's cron engine.

Fields: year, month, day, week (ISO week), day_of_week, hour, minute, second. As in
APScheduler, **day_of_week 0 is Monday** (``mon``..``sun`` = 0..6), in ``from_crontab`` too,
and a day must match both ``day`` and ``day_of_week``. Fields left out default to ``*`` if
they are larger than the largest given field and to their minimum if smaller
(``CronTrigger(hour=3)`` runs at 03:00:00 daily). This differs on purpose from taskq's own
``crontab()``/``cron()``, which keep cron's and Celery's meaning (day_of_week 0 = Sunday).

DST follows taskq's rule (DESIGN.md section 7): an hour field of ``*`` or ``*/n`` keeps its
real-time cadence; any other runs once on the fall-back day (APScheduler 3 runs it twice),
and a time the spring jump skips runs right after the jump.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from taskq.beat.core import cronfields as f
from taskq.beat.core.schedules import CronSchedule, crontab
from taskq.beat.triggers.base import BaseTrigger, as_datetime, as_zone, check_jitter, clamp, iso, zone_text
from taskq.errors import ConfigurationError

UTC = timezone.utc  # APScheduler's name in this module

FIELD_NAMES = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
DEFAULTS: dict[str, str] = {
    "year": "*", "month": "1", "day": "1", "week": "*", "day_of_week": "*", "hour": "0", "minute": "0", "second": "0",
}
APS_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
APS_DAY_OF_WEEK = f.FieldRange("day_of_week", 0, 6, APS_WEEKDAYS)
YEAR = f.FieldRange("year", 1970, 9999, {})
WEEK = f.FieldRange("week", 1, 53, {})
MAX_FILTER_STEPS = 100_000  # year/week filters skip ahead; this bounds a never-matching search


class CronTrigger(BaseTrigger):
    kind = "cron"

    def __init__(
        self,
        year: int | str | None = None,
        month: int | str | None = None,
        day: int | str | None = None,
        week: int | str | None = None,
        day_of_week: int | str | None = None,
        hour: int | str | None = None,
        minute: int | str | None = None,
        second: int | str | None = None,
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
        timezone: str | tzinfo | None = None,
        jitter: float | None = None,
    ) -> None:
        given = {
            name: value
            for name, value in zip(
                FIELD_NAMES, (year, month, day, week, day_of_week, hour, minute, second), strict=True
            )
            if value is not None
        }
        self.fields: dict[str, str] = {}
        remaining = dict(given)
        use_minimum = False
        for name in FIELD_NAMES:
            if name in remaining:
                self.fields[name] = str(remaining.pop(name)).strip().lower()
                use_minimum = not remaining  # fields after the last given one take their minimum
            else:
                self.fields[name] = DEFAULTS[name] if use_minimum else "*"
        self.timezone = as_zone(timezone)
        self.explicit_tz = timezone is not None
        self.start_date = as_datetime(start_date, self.timezone, "CronTrigger start_date")
        self.end_date = as_datetime(end_date, self.timezone, "CronTrigger end_date")
        self.jitter = check_jitter(jitter)
        self._engine, self._years, self._weeks = self._compile()

    def _compile(self) -> tuple[CronSchedule, frozenset[int] | None, frozenset[int] | None]:
        fx = self.fields
        for name in ("day",):
            if "last" in fx[name] or any(ch.isalpha() for ch in fx[name]):
                raise ConfigurationError(
                    f"CronTrigger {name}={fx[name]!r}: 'last' and 'xth weekday' expressions are not supported by taskq"
                )
        weekdays = f.parse_field(fx["day_of_week"], APS_DAY_OF_WEEK, "CronTrigger")
        # APScheduler counts Monday as 0; taskq's cron engine counts Sunday as 0.
        celery_weekdays = sorted((value + 1) % 7 for value in weekdays)
        engine = crontab(
            second=fx["second"],
            minute=fx["minute"],
            hour=fx["hour"],
            day_of_month=fx["day"],
            month_of_year=fx["month"],
            day_of_week=celery_weekdays if fx["day_of_week"] != "*" else "*",
            tz=self.timezone,
        )
        years = None if fx["year"] == "*" else f.parse_field(fx["year"], YEAR, "CronTrigger")
        weeks = None if fx["week"] == "*" else f.parse_field(fx["week"], WEEK, "CronTrigger")
        return engine, years, weeks

    @classmethod
    def from_crontab(cls, expr: str, timezone: str | tzinfo | None = None) -> CronTrigger:
        """A five-field crontab string, read as APScheduler reads it: minute hour day month
        day_of_week, with day_of_week 0 = Monday (unlike cron, and unlike taskq's cron())."""
        values = expr.split()
        if len(values) != 5:
            raise ConfigurationError(f"Wrong number of fields; got {len(values)}, expected 5")
        minute, hour, day, month, day_of_week = values
        return cls(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week, timezone=timezone)

    def next_fire(self, after: datetime) -> datetime | None:
        if self.start_date is not None and after.astimezone(timezone.utc) < self.start_date.astimezone(timezone.utc):
            after = self.start_date - timedelta(microseconds=1)
        found = self._engine.next_fire(after)
        for _ in range(MAX_FILTER_STEPS):
            if found is None or self._matches_filters(found):
                break
            resume = self._skip_from(found)
            found = self._engine.next_fire(resume) if resume is not None else None
        else:
            found = None
        return clamp(found, self.end_date)

    def _matches_filters(self, moment: datetime) -> bool:
        local = moment.astimezone(self.timezone)
        if self._years is not None and local.year not in self._years:
            return False
        return self._weeks is None or local.isocalendar()[1] in self._weeks

    def _skip_from(self, moment: datetime) -> datetime | None:
        """Where to search again after a candidate the year/week filters refuse: the end of
        its year or its day, so a search never walks second by second through a year."""
        local = moment.astimezone(self.timezone)
        if self._years is not None and local.year not in self._years:
            later = [year for year in self._years if year > local.year]
            if not later:
                return None  # no allowed year is left
            return datetime(min(later), 1, 1, tzinfo=self.timezone) - timedelta(microseconds=1)
        end_of_day = local.replace(hour=23, minute=59, second=59, microsecond=0)
        return end_of_day

    def _state(self) -> dict[str, Any]:
        return {
            **{name: value for name, value in self.fields.items()},
            "start_date": iso(self.start_date),
            "end_date": iso(self.end_date),
            "timezone": zone_text(self.timezone),
            "jitter": self.jitter,
        }

    @classmethod
    def _restore(cls, state: dict[str, Any]) -> CronTrigger:
        return cls(**state)

    def __str__(self) -> str:
        return "cron[" + ", ".join(f"{k}='{v}'" for k, v in self.fields.items() if v != "*") + "]"

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}='{v}'" for k, v in self.fields.items() if v != "*")
        return f"<CronTrigger ({shown}, timezone='{zone_text(self.timezone)}')>"
