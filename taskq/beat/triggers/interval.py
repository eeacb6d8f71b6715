"""IntervalTrigger: every ``weeks/days/hours/minutes/seconds`` from ``start_date`` (default:
now + the interval), until ``end_date``, as in APScheduler. Real-time arithmetic (UTC), so
DST changes never stretch or shrink an interval."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from taskq.beat.triggers.base import BaseTrigger, as_datetime, as_zone, check_jitter, clamp, iso, zone_text
from taskq.errors import ConfigurationError

MICRO = timedelta(microseconds=1)


class IntervalTrigger(BaseTrigger):
    kind = "interval"

    def __init__(
        self,
        weeks: float = 0,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
        timezone: str | tzinfo | None = None,
        jitter: float | None = None,
    ) -> None:
        self.interval = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
        if self.interval <= timedelta(0):
            # APScheduler treats a zero interval as one second; a negative one is a mistake.
            if self.interval < timedelta(0):
                raise ConfigurationError(f"IntervalTrigger: the interval must be positive, got {self.interval}")
            self.interval = timedelta(seconds=1)
        self.timezone = as_zone(timezone)
        self.explicit_tz = timezone is not None
        start = as_datetime(start_date, self.timezone, "IntervalTrigger start_date")
        self.start_date: datetime = start if start is not None else datetime.now(self.timezone) + self.interval
        self.end_date = as_datetime(end_date, self.timezone, "IntervalTrigger end_date")
        self.jitter = check_jitter(jitter)

    @property
    def interval_length(self) -> float:
        return self.interval.total_seconds()

    def next_fire(self, after: datetime) -> datetime | None:
        start = self.start_date.astimezone(timezone.utc)
        after_utc = after.astimezone(timezone.utc)
        if after_utc < start:
            found = start
        else:
            # Integer microseconds: no float drift however many intervals have passed.
            step = self.interval // MICRO
            count = (after_utc - start) // MICRO // step + 1
            found = start + count * step * MICRO
        return clamp(found.astimezone(self.timezone), self.end_date)

    def _state(self) -> dict[str, Any]:
        return {
            "seconds": self.interval.total_seconds(),
            "start_date": iso(self.start_date),
            "end_date": iso(self.end_date),
            "timezone": zone_text(self.timezone),
            "jitter": self.jitter,
        }

    @classmethod
    def _restore(cls, state: dict[str, Any]) -> IntervalTrigger:
        return cls(**state)

    def __str__(self) -> str:
        return f"interval[{self.interval}]"

    def __repr__(self) -> str:
        return f"<IntervalTrigger (interval={self.interval!r}, start_date={self.start_date.isoformat(sep=' ')!r})>"
