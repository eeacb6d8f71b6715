"""APScheduler 3's triggers on taskq: the same fire times as APScheduler 3.11's own triggers
(installed as the oracle), except where DESIGN.md section 7 differs on purpose (DST)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.calendarinterval import CalendarIntervalTrigger as ApsCalendarInterval
from apscheduler.triggers.combining import OrTrigger as ApsOr
from apscheduler.triggers.cron import CronTrigger as ApsCron
from apscheduler.triggers.date import DateTrigger as ApsDate
from apscheduler.triggers.interval import IntervalTrigger as ApsInterval

from taskq.beat import events
from taskq.beat.core.schedules import cron, schedule_from_dict
from taskq.beat.triggers import (
    AndTrigger,
    CalendarIntervalTrigger,
    CronTrigger,
    DateTrigger,
    IntervalTrigger,
    OrTrigger,
    trigger_from_dict,
)
from taskq.errors import ConfigurationError

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 10, 12, 0, 7, tzinfo=BERLIN)


def fire_times(trigger: Any, count: int = 6, now: datetime = NOW) -> list[datetime | None]:
    """Ask as APScheduler's scheduler does: each next time after the previous one."""
    previous: datetime | None = None
    out: list[datetime | None] = []
    for _ in range(count):
        previous = trigger.get_next_fire_time(previous, previous or now)
        out.append(previous)
        if previous is None:
            break
    return out


CRON_CASES: list[dict[str, Any]] = [
    {"hour": 3},
    {"minute": "*/15"},
    {"day_of_week": "mon-fri", "hour": "9-17", "minute": 30},
    {"day_of_week": "5,6"},
    {"day_of_week": 0, "hour": 8},
    {"day": 15, "month": "jan,jun", "hour": 2},
    {"year": "2028-2030", "month": 2, "day": 29},
    {"year": 2027, "month": 2, "day": 29},
    {"week": 10, "day_of_week": 0},
    {"second": "*/7"},
    {"day": "1-7", "day_of_week": "sun", "hour": 12},
]


@pytest.mark.parametrize("fields", CRON_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_cron_trigger_fires_as_apscheduler(fields: dict[str, Any]) -> None:
    assert fire_times(CronTrigger(timezone=BERLIN, **fields)) == fire_times(ApsCron(timezone=BERLIN, **fields))


@pytest.mark.parametrize("expr", ["0 9 * * 0", "*/5 * * * mon", "15 10 * * 1-5", "0 12 1-7 * 6"])
def test_from_crontab_reads_day_of_week_as_apscheduler_does(expr: str) -> None:
    ours = CronTrigger.from_crontab(expr, timezone="UTC")
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    assert fire_times(ours, now=now) == fire_times(ApsCron.from_crontab(expr, timezone="UTC"), now=now)


def test_day_of_week_zero_is_monday_for_triggers_and_sunday_for_cron() -> None:
    after = datetime(2026, 6, 3, tzinfo=timezone.utc)  # a Wednesday
    assert CronTrigger.from_crontab("0 9 * * 0", timezone="UTC").next_fire(after).weekday() == 0  # type: ignore[union-attr]
    assert cron("0 9 * * 0", tz="UTC").next_fire(after).weekday() == 6  # type: ignore[union-attr]


def test_interval_and_date_triggers_fire_as_apscheduler() -> None:
    start = NOW - timedelta(seconds=95)
    ours = IntervalTrigger(seconds=30, start_date=start, end_date=NOW + timedelta(minutes=2))
    theirs = ApsInterval(seconds=30, start_date=start, end_date=NOW + timedelta(minutes=2))
    assert fire_times(ours) == fire_times(theirs)
    past = NOW - timedelta(days=1)
    assert fire_times(DateTrigger(past)) == fire_times(ApsDate(past)) == [past, None]


def test_calendar_interval_and_or_triggers_fire_as_apscheduler() -> None:
    # Each with its start_date: without one APScheduler starts on date.today() (the machine's
    # local date) and taskq on today in the trigger's timezone, which differ for an hour a day
    # here (23:00-24:00 UTC is the next day in Berlin): a deliberate difference, not compared.
    for kwargs in (
        {"months": 1, "hour": 4, "start_date": "2026-01-31"},
        {"weeks": 2, "days": 1, "minute": 3, "start_date": "2026-03-27"},
    ):
        ours = CalendarIntervalTrigger(timezone=BERLIN, **kwargs)  # type: ignore[arg-type]
        assert fire_times(ours) == fire_times(ApsCalendarInterval(timezone=BERLIN, **kwargs))  # type: ignore[arg-type]
    ours_or = OrTrigger([CronTrigger(minute="*/10", timezone=BERLIN), CronTrigger(minute="*/15", timezone=BERLIN)])
    theirs_or = ApsOr([ApsCron(minute="*/10", timezone=BERLIN), ApsCron(minute="*/15", timezone=BERLIN)])
    assert fire_times(ours_or) == fire_times(theirs_or)


def test_and_trigger_fires_when_all_agree() -> None:
    both = AndTrigger([CronTrigger(minute="*/10", timezone=BERLIN), CronTrigger(minute="*/15", timezone=BERLIN)])
    times = fire_times(both, count=3)
    assert [t.strftime("%H:%M") for t in times if t] == ["12:30", "13:00", "13:30"]


def test_taskq_dst_rule_on_a_fixed_time_cron_trigger() -> None:
    # 2026-10-25 02:30 happens twice in Berlin: taskq runs a fixed-time job once (APScheduler twice).
    daily = CronTrigger(hour=2, minute=30, timezone=BERLIN)
    runs = fire_times(daily, count=3, now=datetime(2026, 10, 24, 3, 0, tzinfo=BERLIN))
    assert [t.astimezone(timezone.utc).isoformat() for t in runs if t] == [
        "2026-10-25T00:30:00+00:00",
        "2026-10-26T01:30:00+00:00",
        "2026-10-27T01:30:00+00:00",
    ]


def test_triggers_round_trip_through_the_stored_form() -> None:
    triggers = [
        CronTrigger(hour=3, day_of_week="mon-fri", timezone=BERLIN, jitter=2),
        IntervalTrigger(minutes=5, start_date=NOW),
        DateTrigger(NOW),
        CalendarIntervalTrigger(months=1, hour=4, start_date="2026-01-31", timezone=BERLIN),
        OrTrigger([DateTrigger(NOW), CronTrigger(minute=5)]),
    ]
    for trigger in triggers:
        assert trigger_from_dict(trigger.to_dict()) == trigger
        assert schedule_from_dict(trigger.to_dict()) == trigger


def test_bad_cron_fields_fail_at_definition_naming_the_field() -> None:
    with pytest.raises(ConfigurationError, match="hour"):
        CronTrigger(hour=25)
    with pytest.raises(ConfigurationError, match="day_of_week"):
        CronTrigger(day_of_week="funday")
    with pytest.raises(ConfigurationError, match="not supported"):
        CronTrigger(day="last")


def test_event_codes_match_apscheduler() -> None:
    import apscheduler.events as aps

    for name in aps.__all__:
        value = getattr(aps, name)
        if isinstance(value, int):
            assert getattr(events, name) == value, name
    assert events.EVENT_SCHEDULER_START == events.EVENT_SCHEDULER_STARTED == 1
