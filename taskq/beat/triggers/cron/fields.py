"""APScheduler 3's cron fields: one named field of a CronTrigger (``hour``, ``day``, ...) as a
list of expressions (``taskq.beat.triggers.cron.expressions``), with its bounds for a given
date and ``get_next_value(date)``: the smallest value at or after the date's own that any of
its expressions allows. Same names, constants and answers as APScheduler's.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from typing import Any, ClassVar

from taskq.beat.triggers.cron.expressions import (
    HIGHEST,
    LOWEST,
    AllExpression,
    LastDayOfMonthExpression,
    MonthRangeExpression,
    RangeExpression,
    WeekdayPositionExpression,
    WeekdayRangeExpression,
)

__all__ = (
    "DEFAULT_VALUES",
    "MAX_VALUES",
    "MIN_VALUES",
    "SEPARATOR",
    "BaseField",
    "DayOfMonthField",
    "DayOfWeekField",
    "MonthField",
    "WeekField",
)

MIN_VALUES = LOWEST
MAX_VALUES = HIGHEST
DEFAULT_VALUES: dict[str, int | str] = {
    "year": "*", "month": 1, "day": 1, "week": "*", "day_of_week": "*", "hour": 0, "minute": 0, "second": 0,
}  # fmt: skip
SEPARATOR = re.compile(" *, *")

class BaseField:
    """A field whose value is the datetime attribute of the same name."""

    REAL: ClassVar[bool] = True  # False: derived from the date (week, day_of_week), not set on it
    COMPILERS: ClassVar[list[type[AllExpression]]] = [AllExpression, RangeExpression]

    def __init__(self, name: str, exprs: Any, is_default: bool = False) -> None:
        self.name = name
        self.is_default = is_default
        self.compile_expressions(exprs)

    def get_min(self, dateval: datetime) -> int:
        return MIN_VALUES[self.name]

    def get_max(self, dateval: datetime) -> int:
        return MAX_VALUES[self.name]

    def get_value(self, dateval: datetime) -> int:
        value: int = getattr(dateval, self.name)
        return value

    def get_next_value(self, dateval: datetime) -> int | None:
        found = [expr.get_next_value(dateval, self) for expr in self.expressions]
        return min((value for value in found if value is not None), default=None)

    def compile_expressions(self, exprs: Any) -> None:
        self.expressions: list[AllExpression] = []  # every expression class derives from it
        for expr in SEPARATOR.split(str(exprs).strip()):
            self.compile_expression(expr)

    def compile_expression(self, expr: str) -> None:
        for compiler in self.COMPILERS:
            match = compiler.value_re.match(expr)
            if match:
                compiled = compiler(**match.groupdict())
                try:
                    compiled.validate_range(self.name)
                except ValueError as exc:
                    raise ValueError(f"Error validating expression {expr!r}: {exc}") from exc
                self.expressions.append(compiled)
                return
        raise ValueError(f'Unrecognized expression "{expr}" for field "{self.name}"')

    def __eq__(self, other: object) -> bool:
        return isinstance(other, self.__class__) and self.name == other.name and self.expressions == other.expressions

    def __hash__(self) -> int:
        return hash((type(self), self.name, str(self)))

    def __str__(self) -> str:
        return ",".join(str(expr) for expr in self.expressions)

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.name}', '{self}')"


class WeekField(BaseField):
    REAL = False

    def get_value(self, dateval: datetime) -> int:
        return dateval.isocalendar()[1]


class DayOfMonthField(BaseField):
    COMPILERS = [*BaseField.COMPILERS, WeekdayPositionExpression, LastDayOfMonthExpression]

    def get_max(self, dateval: datetime) -> int:
        return calendar.monthrange(dateval.year, dateval.month)[1]


class DayOfWeekField(BaseField):
    REAL = False
    COMPILERS = [*BaseField.COMPILERS, WeekdayRangeExpression]

    def get_value(self, dateval: datetime) -> int:
        return dateval.weekday()


class MonthField(BaseField):
    COMPILERS = [*BaseField.COMPILERS, MonthRangeExpression]
