"""APScheduler 3's cron expressions, the pieces one field of a CronTrigger is made of: ``*`` and
``*/n`` (AllExpression), ``a``, ``a-b``, ``a-b/n`` (RangeExpression), month and weekday names
(MonthRangeExpression, WeekdayRangeExpression), ``2nd fri`` (WeekdayPositionExpression) and
``last`` (LastDayOfMonthExpression).

Each answers ``get_next_value(date, field)``: the first value of ``field`` at or after the
date's own value that the expression allows, within the field's bounds for that date, or None.
Same names, constructors, ``value_re``, texts and answers as APScheduler's, so code that builds
or reads cron fields carries over; taskq's CronTrigger itself compiles its fields with taskq's
cron engine (``taskq.beat.core.schedules``).
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from typing import Any, ClassVar, Protocol

__all__ = (
    "MONTHS",
    "WEEKDAYS",
    "AllExpression",
    "LastDayOfMonthExpression",
    "MonthRangeExpression",
    "RangeExpression",
    "WeekdayPositionExpression",
    "WeekdayRangeExpression",
)

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
# Each field's bounds; ``fields`` hands them on as MIN_VALUES and MAX_VALUES (APScheduler's names).
LOWEST = {"year": 1970, "month": 1, "day": 1, "week": 1, "day_of_week": 0, "hour": 0, "minute": 0, "second": 0}
HIGHEST = {"year": 9999, "month": 12, "day": 31, "week": 53, "day_of_week": 6, "hour": 23, "minute": 59, "second": 59}


class FieldBounds(Protocol):
    """What an expression asks of its field (``fields.BaseField`` is one)."""

    def get_min(self, dateval: datetime) -> int: ...

    def get_max(self, dateval: datetime) -> int: ...

    def get_value(self, dateval: datetime) -> int: ...


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


class AllExpression:
    """``*`` (every value) or ``*/step`` (every step-th value from the field's minimum)."""

    value_re: ClassVar[re.Pattern[str]] = re.compile(r"\*(?:/(?P<step>\d+))?$")

    def __init__(self, step: int | str | None = None) -> None:
        self.step = _int_or_none(step)
        if self.step == 0:
            raise ValueError("Increment must be higher than 0")

    def validate_range(self, field_name: str) -> None:
        span = HIGHEST[field_name] - LOWEST[field_name]
        if self.step is not None and self.step > span:
            raise ValueError(f"the step value ({self.step}) is higher than the total range of the expression ({span})")

    def _first_step(self, value: int, low: int) -> int:
        """The first value at or after ``value`` that lies on a step counted from ``low``."""
        return value if not self.step else value + (self.step - (value - low)) % self.step

    def get_next_value(self, date: datetime, field: FieldBounds) -> int | None:
        low, high = field.get_min(date), field.get_max(date)
        found = self._first_step(max(field.get_value(date), low), low)
        return found if found <= high else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, self.__class__) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.__dict__.items()))))

    def __str__(self) -> str:
        return f"*/{self.step}" if self.step else "*"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.step})"


class RangeExpression(AllExpression):
    """``first``, ``first-last`` or ``first-last/step`` (numbers)."""

    value_re: ClassVar[re.Pattern[str]] = re.compile(r"(?P<first>\d+)(?:-(?P<last>\d+))?(?:/(?P<step>\d+))?$")

    def __init__(self, first: int | str, last: int | str | None = None, step: int | str | None = None) -> None:
        super().__init__(step)
        self.first = int(first)
        self.last = _int_or_none(last)
        if self.last is None and self.step is None:
            self.last = self.first  # a single value
        if self.last is not None and self.first > self.last:
            raise ValueError("The minimum value in a range must not be higher than the maximum")

    def validate_range(self, field_name: str) -> None:
        super().validate_range(field_name)
        low, high = LOWEST[field_name], HIGHEST[field_name]
        if self.first < low:
            raise ValueError(f"the first value ({self.first}) is lower than the minimum value ({low})")
        if self.last is not None and self.last > high:
            raise ValueError(f"the last value ({self.last}) is higher than the maximum value ({high})")
        span = (self.last if self.last is not None else high) - self.first
        if self.step is not None and self.step > span:
            raise ValueError(f"the step value ({self.step}) is higher than the total range of the expression ({span})")

    def get_next_value(self, date: datetime, field: FieldBounds) -> int | None:
        low = max(field.get_min(date), self.first)
        high = field.get_max(date) if self.last is None else min(field.get_max(date), self.last)
        found = self._first_step(max(low, field.get_value(date)), low)
        return found if found <= high else None

    def _range_text(self) -> str:
        if self.last is not None and self.last != self.first:
            return f"{self.first}-{self.last}"
        return str(self.first)

    def __str__(self) -> str:
        return self._range_text() + (f"/{self.step}" if self.step else "")

    def __repr__(self) -> str:
        shown = [str(self.first)]
        if (self.last is not None and self.last != self.first) or self.step:
            shown.append(str(self.last))
        if self.step:
            shown.append(str(self.step))
        return f"{type(self).__name__}({', '.join(shown)})"


class _NamedRangeExpression(RangeExpression):
    """A range written with names (``jan-mar``, ``mon-fri``), kept as numbers."""

    names: ClassVar[list[str]] = []
    offset: ClassVar[int] = 0  # months count from 1, weekdays from 0
    what: ClassVar[str] = ""

    def __init__(self, first: str, last: str | None = None) -> None:
        first_value = self._number(first)
        super().__init__(first_value, self._number(last) if last is not None else first_value)

    def _number(self, name: str) -> int:
        try:
            return self.names.index(name.lower()) + self.offset
        except ValueError:
            raise ValueError(f'Invalid {self.what} name "{name}"') from None

    def __str__(self) -> str:
        first = self.names[self.first - self.offset]
        if self.last is not None and self.last != self.first:
            return f"{first}-{self.names[self.last - self.offset]}"
        return first

    def __repr__(self) -> str:
        shown = [repr(self.names[self.first - self.offset])]
        if self.last is not None and self.last != self.first:
            shown.append(repr(self.names[self.last - self.offset]))
        return f"{type(self).__name__}({', '.join(shown)})"


class MonthRangeExpression(_NamedRangeExpression):
    value_re: ClassVar[re.Pattern[str]] = re.compile(r"(?P<first>[a-z]+)(?:-(?P<last>[a-z]+))?", re.IGNORECASE)
    names = MONTHS
    offset = 1
    what = "month"


class WeekdayRangeExpression(_NamedRangeExpression):
    value_re: ClassVar[re.Pattern[str]] = re.compile(r"(?P<first>[a-z]+)(?:-(?P<last>[a-z]+))?", re.IGNORECASE)
    names = WEEKDAYS
    offset = 0
    what = "weekday"


class WeekdayPositionExpression(AllExpression):
    """``1st mon`` .. ``5th mon``, ``last fri``: that weekday's place in the month."""

    options: ClassVar[list[str]] = ["1st", "2nd", "3rd", "4th", "5th", "last"]
    value_re: ClassVar[re.Pattern[str]] = re.compile(
        r"(?P<option_name>{}) +(?P<weekday_name>(?:\d+|\w+))".format("|".join(options)), re.IGNORECASE
    )

    def __init__(self, option_name: str, weekday_name: str) -> None:
        super().__init__(None)
        try:
            self.option_num = self.options.index(option_name.lower())
        except ValueError:
            raise ValueError(f'Invalid weekday position "{option_name}"') from None
        try:
            self.weekday = WEEKDAYS.index(weekday_name.lower())
        except ValueError:
            raise ValueError(f'Invalid weekday name "{weekday_name}"') from None

    def get_next_value(self, date: datetime, field: FieldBounds) -> int | None:
        first_weekday, last_day = calendar.monthrange(date.year, date.month)
        first_match = 1 + (self.weekday - first_weekday) % 7
        if self.option_num < 5:
            day = first_match + 7 * self.option_num
        else:  # the last one in the month
            day = first_match + 7 * ((last_day - first_match) // 7)
        return day if date.day <= day <= last_day else None

    def __str__(self) -> str:
        return f"{self.options[self.option_num]} {WEEKDAYS[self.weekday]}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.options[self.option_num]}', '{WEEKDAYS[self.weekday]}')"


class LastDayOfMonthExpression(AllExpression):
    """``last``: the month's last day."""

    value_re: ClassVar[re.Pattern[str]] = re.compile(r"last", re.IGNORECASE)

    def __init__(self) -> None:
        super().__init__(None)

    def get_next_value(self, date: datetime, field: FieldBounds) -> int | None:
        return calendar.monthrange(date.year, date.month)[1]

    def __str__(self) -> str:
        return "last"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
