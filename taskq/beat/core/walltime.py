"""Wall-clock arithmetic for cron schedules: the next matching local time, and DST.

``next_wall`` walks naive local times (no timezone) field by field, which is fast for
sparse schedules (a leap day is a few dozen steps). Turning a naive local time into a real
instant is where daylight saving time matters (DESIGN.md section 7):

* a naive time inside the spring gap does not exist: ``resolve`` gives no instant for it;
  ``gap_end`` gives the first real instant after the jump (where fixed-time entries run);
* a naive time inside the fall-back hour exists twice: ``resolve`` gives both passes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

ONE_SECOND = timedelta(seconds=1)
ONE_DAY = timedelta(days=1)
# No zone in use today moves its clock back by more than two hours at once.
MAX_DST_SHIFT = timedelta(hours=3)
SEARCH_YEARS = 30  # far enough for any leap-day-and-weekday combination


@dataclass(frozen=True)
class CronFields:
    """Sorted allowed values per field. day_of_week uses 0 = Sunday, as cron does."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: frozenset[int]
    # Standard cron: when both day fields are restricted a day matching EITHER runs.
    # Celery's crontab() requires both; the owner of the fields decides.
    days_either: bool = False

    def day_matches(self, day: date) -> bool:
        dom = day.day in self.days
        dow = day.isoweekday() % 7 in self.weekdays
        if self.days_either:
            return dom or dow
        return dom and dow


def _next_at_or_after(values: Sequence[int], current: int) -> int | None:
    index = bisect_left(values, current)
    return values[index] if index < len(values) else None


def ceil_second(moment: datetime) -> datetime:
    if moment.microsecond:
        return moment.replace(microsecond=0) + ONE_SECOND
    return moment


def next_wall(fields: CronFields, start: datetime) -> datetime | None:
    """The first naive local time at or after ``start`` (whole seconds) that matches, or None."""
    moment = ceil_second(start.replace(tzinfo=None))
    limit = moment.year + SEARCH_YEARS
    while moment.year <= limit:
        if moment.month not in fields.months:
            month = _next_at_or_after(fields.months, moment.month)
            moment = datetime(moment.year, month, 1) if month else datetime(moment.year + 1, fields.months[0], 1)
            continue
        if not fields.day_matches(moment.date()):
            moment = datetime.combine(moment.date() + ONE_DAY, datetime.min.time())
            continue
        hour = _next_at_or_after(fields.hours, moment.hour)
        if hour is None:
            moment = datetime.combine(moment.date() + ONE_DAY, datetime.min.time())
            continue
        if hour != moment.hour:
            moment = moment.replace(hour=hour, minute=0, second=0)
        minute = _next_at_or_after(fields.minutes, moment.minute)
        if minute is None:
            moment = moment.replace(minute=0, second=0) + timedelta(hours=1)
            continue
        if minute != moment.minute:
            moment = moment.replace(minute=minute, second=0)
        second = _next_at_or_after(fields.seconds, moment.second)
        if second is None:
            moment = moment.replace(second=0) + timedelta(minutes=1)
            continue
        return moment.replace(second=second)
    return None


def to_local(instant: datetime, tz: tzinfo) -> datetime:
    """``instant`` as local time in tz with the right fold (astimezone to the same tzinfo is a
    no-op that would keep a wrong fold, so always go through UTC)."""
    return instant.astimezone(timezone.utc).astimezone(tz)


def _round_trips(aware: datetime, naive: datetime) -> bool:
    # astimezone() to the same tzinfo is a no-op, so go through UTC to re-derive the local time.
    assert aware.tzinfo is not None
    local = to_local(aware, aware.tzinfo)
    return local.replace(tzinfo=None, fold=0) == naive


def resolve(naive: datetime, tz: tzinfo) -> list[datetime]:
    """The real instants (in tz, in order) whose local time is ``naive``: 0, 1 or 2 of them."""
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first]
    if not _round_trips(first, naive):
        return []  # inside the spring gap
    return [first, second]


def _first_change(start: datetime, end: datetime, tz: tzinfo) -> datetime:
    """The first instant in (start, end] whose UTC offset differs from start's (whole seconds)."""
    base = to_local(start, tz).utcoffset()
    low, high = int(start.timestamp()), int(end.timestamp()) + 1
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == base:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, tz)


def gap_end(naive: datetime, tz: tzinfo) -> datetime:
    """For a local time inside the spring gap: the first real instant after the jump."""
    before = naive.replace(tzinfo=tz, fold=1)  # read with the later offset: an instant before the jump
    after = naive.replace(tzinfo=tz, fold=0)  # read with the earlier offset: an instant after it
    low, high = sorted((before, after), key=datetime.timestamp)  # not min(): same-zone compares wall time
    return _first_change(low, high, tz)


def fixed_instant(naive: datetime, tz: tzinfo) -> datetime:
    """Where a fixed-time entry runs for this local time: first pass, or right after a gap."""
    instants = resolve(naive, tz)
    return instants[0] if instants else gap_end(naive, tz)


def repeated_period(after: datetime, tz: tzinfo) -> tuple[datetime, datetime] | None:
    """If ``after`` lies in the first pass of a repeated (fall-back) hour: that period's
    naive (start, end) local times, which the clock will run through once more."""
    local = to_local(after, tz)
    if local.fold == 1:
        return None
    naive = local.replace(tzinfo=None)
    instants = resolve(naive, tz)
    if len(instants) < 2:
        return None
    change = _first_change(after, after + MAX_DST_SHIFT, tz)
    start = change.replace(tzinfo=None, fold=0)  # local time right after falling back
    last_first_pass = change.astimezone(timezone.utc) - timedelta(microseconds=1)
    end = to_local(last_first_pass, tz).replace(tzinfo=None, fold=0)
    return start, end
