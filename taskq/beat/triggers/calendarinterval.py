"""CalendarIntervalTrigger: every ``years/months/weeks/days`` of the calendar at the wall
time ``hour:minute:second``, as in APScheduler 3.11. Dates that do not exist (the 31st in a
short month) are skipped. A wall time the spring jump skips runs right after the jump, and
a repeated one runs in its first pass (taskq's fixed-time DST rule)."""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from taskq.beat.core.walltime import fixed_instant
from taskq.beat.triggers.base import BaseTrigger, as_zone, check_jitter, zone_text
from taskq.errors import ConfigurationError

MAX_STEPS = 100_000


class CalendarIntervalTrigger(BaseTrigger):
    kind = "calendarinterval"

    def __init__(
        self,
        *,
        years: int = 0,
        months: int = 0,
        weeks: int = 0,
        days: int = 0,
        hour: int = 0,
        minute: int = 0,
        second: int = 0,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        timezone: str | tzinfo | None = None,
        jitter: float | None = None,
    ) -> None:
        if years < 0 or months < 0 or weeks < 0 or days < 0:
            raise ConfigurationError("CalendarIntervalTrigger: interval values must be non-negative")
        if not (years or months or weeks or days):
            raise ConfigurationError("CalendarIntervalTrigger: interval must be at least 1 day long")
        self.years, self.months, self.weeks, self.days = years, months, weeks, days
        self.time = time(hour, minute, second)
        self.timezone = as_zone(timezone)
        self.explicit_tz = timezone is not None
        self.start_date = _as_date(start_date) or datetime.now(self.timezone).date()
        self.end_date = _as_date(end_date)
        if self.end_date is not None and self.end_date < self.start_date:
            raise ConfigurationError("CalendarIntervalTrigger: end_date cannot be earlier than start_date")
        self.jitter = check_jitter(jitter)

    def _date(self, step: int) -> date | None:
        """The start date moved by ``step`` intervals, or None if that day does not exist."""
        month_index = self.start_date.month - 1 + step * (self.years * 12 + self.months)
        year, month = self.start_date.year + month_index // 12, month_index % 12 + 1
        if self.start_date.day > calendar.monthrange(year, month)[1]:
            return None
        moved = date(year, month, self.start_date.day)
        return moved + timedelta(days=step * (self.weeks * 7 + self.days))

    def next_fire(self, after: datetime) -> datetime | None:
        after_utc = after.astimezone(timezone.utc)
        local_day = after.astimezone(self.timezone).date()
        step = self._first_step_near(local_day)
        for _ in range(MAX_STEPS):
            day = self._date(step)
            step += 1
            if day is None:
                continue
            if self.end_date is not None and day > self.end_date:
                return None
            instant = fixed_instant(datetime.combine(day, self.time), self.timezone)
            if instant.astimezone(timezone.utc) > after_utc:
                return instant
        return None

    def first_fire(self, now: datetime) -> datetime | None:
        # As APScheduler: a new job's first run is on the start date (if already past, the
        # misfire policy decides), not the first interval after now.
        start = fixed_instant(datetime.combine(self.start_date, time()), self.timezone)
        return self.next_fire(start - timedelta(microseconds=1))

    def _first_step_near(self, day: date) -> int:
        """A step at or just before ``day``, so the search does not walk from the start date."""
        days_per_step = (self.years * 365 + self.months * 28) + self.weeks * 7 + self.days
        return max(0, (day - self.start_date).days // max(days_per_step, 1) - 2) if day > self.start_date else 0

    def _state(self) -> dict[str, Any]:
        return {
            "years": self.years, "months": self.months, "weeks": self.weeks, "days": self.days,
            "hour": self.time.hour, "minute": self.time.minute, "second": self.time.second,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "timezone": zone_text(self.timezone),
            "jitter": self.jitter,
        }

    @classmethod
    def _restore(cls, state: dict[str, Any]) -> CalendarIntervalTrigger:
        return cls(**state)

    def __str__(self) -> str:
        parts = [f"{v} {n}" for n, v in (("years", self.years), ("months", self.months), ("weeks", self.weeks),
                                         ("days", self.days)) if v]
        return f"calendarinterval[{', '.join(parts)} at {self.time}]"

    def __repr__(self) -> str:
        return f"<CalendarIntervalTrigger ({self})>"


def _as_date(value: date | str | None) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(value)
