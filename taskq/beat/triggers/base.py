"""APScheduler 3's trigger interface on taskq's schedule protocol.

A trigger is a taskq schedule (``next_fire(after)``: the first instant strictly after
``after``, ``to_dict()`` for persistent stores) that also answers APScheduler's
``get_next_fire_time(previous_fire_time, now)``. ``jitter`` is carried over to the job's
misfire policy (taskq jitters every instant deterministically, so that several beats agree).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from taskq.beat.core.schedules import get_zone, register_stored_type, zone_name
from taskq.errors import ConfigurationError

ONE_MICROSECOND = timedelta(microseconds=1)
TRIGGER_TYPE = "trigger"  # the "type" of a stored trigger (schedule_from_dict hands it to us)

# Trigger kinds by their stored name: "module:Class", imported on first use.
KINDS = {
    "date": "taskq.beat.triggers.date:DateTrigger",
    "interval": "taskq.beat.triggers.interval:IntervalTrigger",
    "cron": "taskq.beat.triggers.cron:CronTrigger",
    "calendarinterval": "taskq.beat.triggers.calendarinterval:CalendarIntervalTrigger",
    "and": "taskq.beat.triggers.combining:AndTrigger",
    "or": "taskq.beat.triggers.combining:OrTrigger",
}


class BaseTrigger(ABC):
    kind: str = ""
    jitter: float | None = None
    explicit_tz: bool = True  # False: made without a timezone, so the scheduler's applies

    def with_default_tz(self, zone: tzinfo) -> BaseTrigger:
        """This trigger in the scheduler's timezone unless it was given one of its own
        (APScheduler falls back to the host's zone, which is its scheduler's default too)."""
        if self.explicit_tz:
            return self
        state = self._state()
        state["timezone"] = zone_text(zone)
        rebuilt: BaseTrigger = type(self)._restore(state)  # type: ignore[attr-defined]
        return rebuilt

    @abstractmethod
    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), or None."""

    def first_fire(self, now: datetime) -> datetime | None:
        """The first fire time for a new job: at or after ``now``."""
        return self.next_fire(now - ONE_MICROSECOND)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """APScheduler's question: the next fire time after the previous one, else from now."""
        if previous_fire_time is not None:
            return self.next_fire(previous_fire_time)
        return self.first_fire(now)

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this trigger (JSON-friendly)."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": TRIGGER_TYPE, "kind": self.kind, **self._state()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items(), key=str)))


def trigger_from_dict(data: dict[str, Any]) -> BaseTrigger:
    """Inverse of ``BaseTrigger.to_dict``."""
    state = dict(data)
    state.pop("type", None)
    kind = state.pop("kind", None)
    target = KINDS.get(str(kind))
    if target is None:
        raise ConfigurationError(f"unknown stored trigger kind {kind!r}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    restored: BaseTrigger = cls._restore(state)
    return restored


register_stored_type(TRIGGER_TYPE, trigger_from_dict)


# -- helpers shared by the triggers ----------------------------------------------------------
def as_zone(tz: str | tzinfo | None, default: tzinfo | None = None) -> tzinfo:
    return get_zone(tz) or default or timezone.utc


def zone_text(tz: tzinfo) -> str | None:
    return zone_name(tz)


def as_datetime(value: datetime | str | None, tz: tzinfo, what: str) -> datetime | None:
    """APScheduler accepts a datetime or an ISO string; naive values are read in ``tz``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigurationError(f"{what}: {value!r} is not an ISO-8601 date/time") from None
    if not isinstance(value, datetime):
        raise ConfigurationError(f"{what}: expected a datetime or an ISO string, not {value!r}")
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def check_jitter(jitter: float | None) -> float | None:
    if jitter is not None and jitter < 0:
        raise ConfigurationError(f"jitter must be non-negative, not {jitter!r}")
    return jitter or None


def clamp(found: datetime | None, end_date: datetime | None) -> datetime | None:
    """None past the end date."""
    if found is None or end_date is None:
        return found
    return found if found.astimezone(timezone.utc) <= end_date.astimezone(timezone.utc) else None
