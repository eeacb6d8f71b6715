"""taskq.beat.triggers.cron.fields and .expressions answer as APScheduler 3.11's do: the same
text, repr, next value for many dates, and the same expressions refused."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import apscheduler.triggers.cron.fields as aps_fields
import pytest

import taskq.beat.triggers.cron.fields as tq_fields

CASES = [
    ("BaseField", "second", "*"),
    ("BaseField", "minute", "*/7"),
    ("BaseField", "hour", "9-17"),
    ("BaseField", "hour", "9-17/4"),
    ("BaseField", "hour", "3"),
    ("BaseField", "minute", "0,15,30 , 45"),
    ("BaseField", "year", "2026-2030/2"),
    ("BaseField", "second", "5-/2"),
    ("BaseField", "hour", "25"),
    ("BaseField", "hour", "17-9"),
    ("BaseField", "minute", "*/0"),
    ("BaseField", "minute", "*/99"),
    ("WeekField", "week", "*/2"),
    ("WeekField", "week", "10-20"),
    ("DayOfMonthField", "day", "last"),
    ("DayOfMonthField", "day", "1st mon"),
    ("DayOfMonthField", "day", "3rd fri"),
    ("DayOfMonthField", "day", "5th wed"),
    ("DayOfMonthField", "day", "last sun"),
    ("DayOfMonthField", "day", "15,last"),
    ("DayOfMonthField", "day", "29-31"),
    ("DayOfMonthField", "day", "2nd xyz"),
    ("DayOfWeekField", "day_of_week", "mon-fri"),
    ("DayOfWeekField", "day_of_week", "sat"),
    ("DayOfWeekField", "day_of_week", "*/3"),
    ("DayOfWeekField", "day_of_week", "0-4"),
    ("DayOfWeekField", "day_of_week", "fri-mon"),
    ("MonthField", "month", "jan-mar"),
    ("MonthField", "month", "FEB"),
    ("MonthField", "month", "*/5"),
    ("MonthField", "month", "feb,aug-oct"),
]
START = datetime(2026, 1, 1, 0, 0, 0)
DATES = [START + timedelta(days=d * 11, hours=d * 5, minutes=d * 7, seconds=d * 13) for d in range(70)]


def build(module: Any, cls: str, name: str, expr: str) -> Any:
    try:
        return getattr(module, cls)(name, expr)
    except ValueError:
        return ValueError


@pytest.mark.parametrize(("cls", "name", "expr"), CASES)
def test_field_answers_as_apscheduler(cls: str, name: str, expr: str) -> None:
    theirs, ours = build(aps_fields, cls, name, expr), build(tq_fields, cls, name, expr)
    if theirs is ValueError:
        assert ours is ValueError, f"APScheduler refuses {expr!r} for {name}; taskq accepts it"
        return
    assert ours is not ValueError, f"APScheduler accepts {expr!r} for {name}; taskq refuses it"
    assert (str(ours), repr(ours), ours.REAL) == (str(theirs), repr(theirs), theirs.REAL)
    # (types and texts: APScheduler's MonthRangeExpression repr names the month after)
    assert [(type(e).__name__, str(e)) for e in ours.expressions] == [
        (type(e).__name__, str(e)) for e in theirs.expressions
    ]
    for date in DATES:
        assert ours.get_next_value(date) == theirs.get_next_value(date), (expr, date)
        assert (ours.get_min(date), ours.get_max(date), ours.get_value(date)) == (
            theirs.get_min(date),
            theirs.get_max(date),
            theirs.get_value(date),
        )


def test_constants_are_apschedulers() -> None:
    assert tq_fields.MIN_VALUES == aps_fields.MIN_VALUES
    assert tq_fields.MAX_VALUES == aps_fields.MAX_VALUES
    assert tq_fields.DEFAULT_VALUES == aps_fields.DEFAULT_VALUES
    assert tq_fields.SEPARATOR.pattern == aps_fields.SEPARATOR.pattern
