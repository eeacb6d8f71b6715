"""Schedules: pure functions of time. ``next_fire(after)`` is the first instant strictly after
``after`` (tz-aware in, tz-aware out), or None when the schedule has no more runs.

* ``every(seconds=30)`` / a timedelta: a fixed real-time period counted from an anchor (the
  entry's persisted ``start_date``; the Unix epoch when unanchored), so every beat process
  computes the same instants.
* ``crontab(minute=, hour=, day_of_week=, day_of_month=, month_of_year=, second=, tz=)``:
  Celery's keywords and meanings (day_of_week 0 = Sunday; both day fields must match).
* ``cron("*/15 9-17 * * mon-fri", tz=...)``: a five-field cron string with cron's rule that a
  day matching EITHER restricted day field runs.
* ``at(datetime)``: once.

DST (DESIGN.md section 7): a cron schedule whose hour field is ``*`` or ``*/n`` keeps its
real-time cadence: it runs in both passes of a repeated hour and simply has no runs in the
skipped hour. Any other cron schedule is fixed-time: on the fall-back day it runs in the
first pass only, and a time that the spring jump skips runs right after the jump.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskq.beat.core import cronfields as f
from taskq.beat.core.walltime import CronFields, fixed_instant, next_wall, repeated_period, resolve, to_local
from taskq.errors import ConfigurationError

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@runtime_checkable
class Schedule(Protocol):
    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire instant strictly after ``after`` (tz-aware), or None."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description that ``schedule_from_dict`` turns back into an equal schedule."""


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(f"{what} must be timezone-aware, got naive {moment.isoformat()}")


def get_zone(tz: str | tzinfo | None) -> tzinfo | None:
    """A tzinfo from a zone name ("Europe/Berlin"), a tzinfo, or None (left to the app)."""
    if tz is None or isinstance(tz, tzinfo):
        return tz
    if tz.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"unknown timezone {tz!r} (use an IANA name such as 'Europe/Berlin')") from None


def zone_name(tz: tzinfo | None) -> str | None:
    if tz is None:
        return None
    if tz is timezone.utc:
        return "UTC"
    key = getattr(tz, "key", None)
    if key is None:
        raise ConfigurationError(f"timezone {tz!r} has no IANA name, so it cannot be stored; use ZoneInfo")
    return str(key)


@dataclass(frozen=True)
class every:  # lower case, like Celery's crontab() and schedule()
    """A fixed period. Counted from ``anchor`` (the entry's start_date), else the Unix epoch."""

    period: timedelta
    anchor: datetime | None = None

    def __init__(
        self,
        period: timedelta | float | None = None,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        weeks: float = 0,
        anchor: datetime | None = None,
    ) -> None:
        if isinstance(period, (int, float)):
            period = timedelta(seconds=period)
        total = (period or timedelta()) + timedelta(
            seconds=seconds, minutes=minutes, hours=hours, days=days, weeks=weeks
        )
        if total <= timedelta(0):
            raise ConfigurationError(f"every(): the period must be positive, got {total}")
        if anchor is not None:
            _require_aware(anchor, "every() anchor")
        object.__setattr__(self, "period", total)
        object.__setattr__(self, "anchor", anchor)

    def anchored(self, anchor: datetime) -> every:
        return every(self.period, anchor=anchor)

    def next_fire(self, after: datetime) -> datetime | None:
        _require_aware(after, "next_fire(after)")
        # Arithmetic in UTC: aware datetimes in one zone add timedeltas to the wall clock.
        anchor = (self.anchor or EPOCH).astimezone(timezone.utc)
        first = anchor + self.period
        if after < first:
            return to_local(first, after.tzinfo or timezone.utc)
        # Integer microseconds: no float drift however many periods have passed.
        step = self.period // timedelta(microseconds=1)
        elapsed = (after.astimezone(timezone.utc) - anchor) // timedelta(microseconds=1)
        count = elapsed // step + 1
        return to_local(anchor + timedelta(microseconds=count * step), after.tzinfo or timezone.utc)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "every",
            "microseconds": self.period // timedelta(microseconds=1),
            "anchor": self.anchor.isoformat() if self.anchor else None,
        }

    def __repr__(self) -> str:
        return f"every({self.period})"


@dataclass(frozen=True)
class CronSchedule:
    """The engine behind crontab() and cron(): parsed fields, a timezone and the DST rule."""

    fields: CronFields
    texts: tuple[str, str, str, str, str, str]  # second, minute, hour, dom, month, dow as written
    tz: tzinfo | None
    real_time: bool  # hour field is * or */n: keep real-time cadence across DST
    kind: str = field(default="crontab")

    @property
    def zone(self) -> tzinfo:
        return self.tz or timezone.utc

    def with_default_tz(self, tz: str | tzinfo) -> CronSchedule:
        """This schedule in ``tz`` unless it names its own (the app's timezone applies)."""
        if self.tz is not None:
            return self
        return CronSchedule(self.fields, self.texts, get_zone(tz), self.real_time, self.kind)

    def next_fire(self, after: datetime) -> datetime | None:
        _require_aware(after, "next_fire(after)")
        zone = self.zone
        # Compare in UTC: Python compares two datetimes of one zone by wall clock, fold ignored.
        after = after.astimezone(timezone.utc)
        # Candidates start one whole second past after's wall time: instants are whole seconds.
        start = to_local(after, zone).replace(tzinfo=None, fold=0, microsecond=0) + timedelta(seconds=1)
        found = self._next_in_order(after, start, zone)
        if self.real_time:
            # The clock will run through a repeated hour once more: matches there come too.
            period = repeated_period(after, zone)
            if period is not None:
                again = next_wall(self.fields, period[0])
                if again is not None and again <= period[1]:
                    second_pass = again.replace(tzinfo=zone, fold=1)
                    if _utc(second_pass) > after and (found is None or _utc(second_pass) < _utc(found)):
                        found = second_pass
        return found

    def _next_in_order(self, after: datetime, start: datetime, zone: tzinfo) -> datetime | None:
        candidate = next_wall(self.fields, start)
        while candidate is not None:
            instants = resolve(candidate, zone) if self.real_time else [fixed_instant(candidate, zone)]
            for instant in instants:
                if _utc(instant) > after:
                    return instant
            candidate = next_wall(self.fields, candidate + timedelta(seconds=1))
        return None

    def to_dict(self) -> dict[str, Any]:
        second, minute, hour, dom, month, dow = self.texts
        if self.kind == "cron":
            return {"type": "cron", "expr": " ".join((minute, hour, dom, month, dow)), "tz": zone_name(self.tz)}
        return {
            "type": "crontab",
            "second": second,
            "minute": minute,
            "hour": hour,
            "day_of_month": dom,
            "month_of_year": month,
            "day_of_week": dow,
            "tz": zone_name(self.tz),
        }

    def __repr__(self) -> str:
        second, minute, hour, dom, month, dow = self.texts
        tz = f", tz={zone_name(self.tz)!r}" if self.tz else ""
        if self.kind == "cron":
            return f"cron({' '.join((minute, hour, dom, month, dow))!r}{tz})"
        return (
            f"crontab(second={second!r}, minute={minute!r}, hour={hour!r}, day_of_month={dom!r},"
            f" month_of_year={month!r}, day_of_week={dow!r}{tz})"
        )


def _build(
    kind: str,
    specs: tuple[f.FieldSpec, f.FieldSpec, f.FieldSpec, f.FieldSpec, f.FieldSpec, f.FieldSpec],
    tz: str | tzinfo | None,
) -> CronSchedule:
    second, minute, hour, dom, month, dow = specs
    ranges = (f.SECOND, f.MINUTE, f.HOUR, f.DAY_OF_MONTH, f.MONTH_OF_YEAR, f.DAY_OF_WEEK)
    parsed = [f.parse_field(spec, rng, kind) for spec, rng in zip(specs, ranges, strict=True)]
    # Cron's OR rule applies when both day fields are restricted, i.e. not a bare "*" (as
    # croniter and POSIX read it; Vixie cron also treats "*/n" as unrestricted here).
    days_either = kind == "cron" and f.spec_text(dom) != "*" and f.spec_text(dow) != "*"
    cron_fields = CronFields(
        seconds=tuple(sorted(parsed[0])),
        minutes=tuple(sorted(parsed[1])),
        hours=tuple(sorted(parsed[2])),
        days=tuple(sorted(parsed[3])),
        months=tuple(sorted(parsed[4])),
        weekdays=parsed[5],
        days_either=days_either,
    )
    t = f.spec_text
    texts = (t(second), t(minute), t(hour), t(dom), t(month), t(dow))
    _check_reachable(kind, cron_fields, texts)
    return CronSchedule(cron_fields, texts, get_zone(tz), real_time=f.is_wildcard(hour), kind=kind)


def _check_reachable(kind: str, cron_fields: CronFields, texts: tuple[str, ...]) -> None:
    """Refuse day/month combinations that never occur (February 30th) at definition."""
    if cron_fields.days_either or len(cron_fields.weekdays) == 0:
        return
    longest = max(calendar.monthrange(2024, month)[1] for month in cron_fields.months)  # 2024: leap year
    if min(cron_fields.days) > longest:
        raise ConfigurationError(
            f"{kind} day_of_month={texts[3]!r} month_of_year={texts[4]!r}:"
            " no such day in those months, it would never run"
        )


def crontab(
    minute: f.FieldSpec = "*",
    hour: f.FieldSpec = "*",
    day_of_week: f.FieldSpec = "*",
    day_of_month: f.FieldSpec = "*",
    month_of_year: f.FieldSpec = "*",
    second: f.FieldSpec = 0,
    tz: str | tzinfo | None = None,
) -> CronSchedule:
    """Celery's crontab: same keywords and meanings (day_of_week 0 or 'sun' = Sunday; a day
    must match both day_of_month and day_of_week). ``tz`` None means the app's timezone."""
    return _build("crontab", (second, minute, hour, day_of_month, month_of_year, day_of_week), tz)


ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def cron(expression: str, tz: str | tzinfo | None = None) -> CronSchedule:
    """A five-field cron string: minute hour day-of-month month day-of-week (0 or 7 = Sunday)."""
    text = ALIASES.get(expression.strip().lower(), expression)
    parts = text.split()
    if len(parts) != 5:
        raise ConfigurationError(
            f"cron({expression!r}): expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    minute, hour, dom, month, dow = parts
    return _build("cron", ("0", minute, hour, dom, month, dow), tz)


@dataclass(frozen=True)
class at:  # reads as a sentence: schedule=at(when)
    """One run at ``when``; a naive datetime is read in ``tz`` (default UTC)."""

    when: datetime

    def __init__(self, when: datetime, tz: str | tzinfo | None = None) -> None:
        if when.tzinfo is None:
            when = when.replace(tzinfo=get_zone(tz) or timezone.utc)
        object.__setattr__(self, "when", when)

    def next_fire(self, after: datetime) -> datetime | None:
        _require_aware(after, "next_fire(after)")
        return self.when if _utc(self.when) > _utc(after) else None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "at", "when": self.when.isoformat()}


def as_schedule(value: Any, default_tz: str | tzinfo | None = None) -> Schedule:
    """Accept what beat_schedule may hold: a schedule, a timedelta, seconds, or a cron string."""
    if isinstance(value, CronSchedule):
        return value.with_default_tz(default_tz) if default_tz is not None else value
    if isinstance(value, Schedule):
        return value
    if isinstance(value, (timedelta, int, float)) and not isinstance(value, bool):
        return every(value)
    if isinstance(value, str):
        return as_schedule(cron(value), default_tz)
    if isinstance(value, datetime):
        return at(value)
    converted = _from_celery(value)
    if converted is not None:
        return as_schedule(converted, default_tz)
    raise ConfigurationError(f"not a schedule: {value!r} (use every(), crontab(), cron(), at() or a timedelta)")


def _from_celery(value: Any) -> Schedule | None:
    """Celery's own ``crontab`` and ``schedule`` objects, so a Celery beat_schedule moves over
    unchanged (recognised by their attributes: Celery need not be importable)."""
    if type(value).__module__ != "celery.schedules":
        return None
    if hasattr(value, "_orig_minute"):
        return crontab(
            minute=value._orig_minute,
            hour=value._orig_hour,
            day_of_week=value._orig_day_of_week,
            day_of_month=value._orig_day_of_month,
            month_of_year=value._orig_month_of_year,
        )
    run_every = getattr(value, "run_every", None)
    if isinstance(run_every, timedelta) and type(value).__name__ == "schedule":
        return every(run_every, anchor=EPOCH if getattr(value, "relative", False) else None)
    if type(value).__name__ == "solar":
        from taskq.beat.core.solar import solar

        return solar(value.event, value.lat, value.lon)
    return None


# Stored schedule types that the layers above the core add: the scheduler API's triggers
# (``taskq.beat.triggers``) register "trigger" when they are imported, which importing
# ``taskq.beat`` always does. The core itself knows none of them.
STORED_TYPES: dict[str, Callable[[dict[str, Any]], Schedule]] = {}


def register_stored_type(kind: str, decoder: Callable[[dict[str, Any]], Schedule]) -> None:
    """Let ``schedule_from_dict`` read schedules whose ``to_dict()`` says ``type: kind``."""
    STORED_TYPES[kind] = decoder


def schedule_from_dict(data: dict[str, Any]) -> Schedule:
    """Inverse of ``Schedule.to_dict``."""
    kind = data.get("type")
    if kind == "every":
        anchor = data.get("anchor")
        return every(
            timedelta(microseconds=int(data["microseconds"])),
            anchor=datetime.fromisoformat(anchor) if anchor else None,
        )
    if kind == "crontab":
        return crontab(
            minute=data["minute"],
            hour=data["hour"],
            day_of_week=data["day_of_week"],
            day_of_month=data["day_of_month"],
            month_of_year=data["month_of_year"],
            second=data["second"],
            tz=data.get("tz"),
        )
    if kind == "cron":
        return cron(data["expr"], tz=data.get("tz"))
    if kind == "at":
        return at(datetime.fromisoformat(data["when"]))
    if kind == "solar":
        from taskq.beat.core.solar import solar

        return solar(data["event"], float(data["lat"]), float(data["lon"]))
    decoder = STORED_TYPES.get(str(kind))
    if decoder is not None:
        return decoder(data)
    raise ConfigurationError(f"unknown stored schedule type {kind!r}")
