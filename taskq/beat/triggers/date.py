"""DateTrigger: one run at ``run_date`` (default: now), as in APScheduler."""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import Any

from taskq.beat.triggers.base import BaseTrigger, as_datetime, as_zone, iso


class DateTrigger(BaseTrigger):
    kind = "date"

    def __init__(self, run_date: datetime | str | None = None, timezone: str | tzinfo | None = None) -> None:
        zone = as_zone(timezone)
        self._as_given = run_date
        moment = as_datetime(run_date, zone, "DateTrigger run_date")
        self.run_date: datetime = moment if moment is not None else datetime.now(zone)
        # A naive run date without a timezone is read in the scheduler's timezone.
        self.explicit_tz = timezone is not None or (moment is not None and _is_aware(run_date))

    def with_default_tz(self, zone: tzinfo) -> BaseTrigger:
        return self if self.explicit_tz else DateTrigger(self._as_given, timezone=zone)

    def next_fire(self, after: datetime) -> datetime | None:
        return self.run_date if _utc(self.run_date) > _utc(after) else None

    def first_fire(self, now: datetime) -> datetime | None:
        # A run date already past is still the job's run time: it is then missed or run
        # late by the misfire policy, as APScheduler does.
        return self.run_date

    def _state(self) -> dict[str, Any]:
        return {"run_date": iso(self.run_date)}

    @classmethod
    def _restore(cls, state: dict[str, Any]) -> DateTrigger:
        return cls(state["run_date"])

    def __str__(self) -> str:
        return f"date[{self.run_date.isoformat(sep=' ')}]"

    def __repr__(self) -> str:
        return f"<DateTrigger (run_date={self.run_date.isoformat(sep=' ')!r})>"


def _is_aware(value: datetime | str | None) -> bool:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return isinstance(value, datetime) and value.tzinfo is not None


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)
