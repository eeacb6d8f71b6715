"""Pure schedules: next_fire tables (DST, month ends, leap day), errors, croniter as oracle."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from taskq.beat.core.schedules import as_schedule, at, cron, crontab, every, schedule_from_dict
from taskq.errors import ConfigurationError

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def fires(schedule: object, after: datetime, count: int) -> list[str]:
    """The next ``count`` fire instants as local ISO strings with offsets."""
    out: list[str] = []
    moment: datetime | None = after
    for _ in range(count):
        assert moment is not None
        moment = schedule.next_fire(moment)  # type: ignore[attr-defined]
        if moment is None:
            break
        out.append(moment.astimezone(after.tzinfo).isoformat())
    return out


# --- DST: fixed-time entries -------------------------------------------------------------

@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # Berlin spring forward 2025-03-30: 02:00 CET -> 03:00 CEST. A skipped time runs right after the jump.
        ("30 2 * * *", BERLIN, datetime(2025, 3, 29, 12, tzinfo=BERLIN),
         ["2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"]),
        # Two skipped times land on the same instant: one run.
        ("0,30 2 * * *", BERLIN, datetime(2025, 3, 29, 12, tzinfo=BERLIN),
         ["2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00"]),
        # A skipped time and a real one after it both run.
        ("30 2,3 * * *", BERLIN, datetime(2025, 3, 29, 12, tzinfo=BERLIN),
         ["2025-03-30T03:00:00+02:00", "2025-03-30T03:30:00+02:00", "2025-03-31T02:30:00+02:00"]),
        # Berlin fall back 2025-10-26: 03:00 CEST -> 02:00 CET. First pass only.
        ("30 2 * * *", BERLIN, datetime(2025, 10, 25, 12, tzinfo=BERLIN),
         ["2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"]),
        ("*/20 2 * * *", BERLIN, datetime(2025, 10, 26, 1, 50, tzinfo=BERLIN),
         ["2025-10-26T02:00:00+02:00", "2025-10-26T02:20:00+02:00", "2025-10-26T02:40:00+02:00",
          "2025-10-27T02:00:00+01:00"]),
        # New York spring forward 2025-03-09: 02:00 EST -> 03:00 EDT.
        ("15 2 * * *", NEW_YORK, datetime(2025, 3, 8, 12, tzinfo=NEW_YORK),
         ["2025-03-09T03:00:00-04:00", "2025-03-10T02:15:00-04:00"]),
        # New York fall back 2025-11-02: 02:00 EDT -> 01:00 EST. 01:30 exists twice; runs once.
        ("30 1 * * *", NEW_YORK, datetime(2025, 11, 1, 12, tzinfo=NEW_YORK),
         ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]),
        # Daily at a time far from the change is unaffected, at the same wall time.
        ("0 9 * * *", NEW_YORK, datetime(2025, 11, 1, 12, tzinfo=NEW_YORK),
         ["2025-11-02T09:00:00-05:00", "2025-11-03T09:00:00-05:00"]),
    ],
)
def test_fixed_time_entries_across_dst(expression: str, zone: ZoneInfo, after: datetime, expected: list[str]) -> None:
    assert fires(cron(expression, tz=zone), after, len(expected)) == expected


def test_fixed_time_entry_started_in_second_pass_waits_for_tomorrow() -> None:
    second_pass = datetime(2025, 10, 26, 2, 10, fold=1, tzinfo=BERLIN)
    assert fires(cron("30 2 * * *", tz=BERLIN), second_pass, 1) == ["2025-10-27T02:30:00+01:00"]


# --- DST: real-time (wildcard hour) entries ----------------------------------------------

@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # Fall back: both passes of the repeated hour run, 20 minutes apart in real time.
        ("*/20 * * * *", BERLIN, datetime(2025, 10, 26, 1, 50, tzinfo=BERLIN),
         ["2025-10-26T02:00:00+02:00", "2025-10-26T02:20:00+02:00", "2025-10-26T02:40:00+02:00",
          "2025-10-26T02:00:00+01:00", "2025-10-26T02:20:00+01:00", "2025-10-26T02:40:00+01:00",
          "2025-10-26T03:00:00+01:00"]),
        ("5 * * * *", NEW_YORK, datetime(2025, 11, 2, 0, 30, tzinfo=NEW_YORK),
         ["2025-11-02T01:05:00-04:00", "2025-11-02T01:05:00-05:00", "2025-11-02T02:05:00-05:00"]),
        # Spring forward: the skipped hour has no runs, the cadence goes on in real time.
        ("*/30 * * * *", BERLIN, datetime(2025, 3, 30, 1, 0, tzinfo=BERLIN),
         ["2025-03-30T01:30:00+01:00", "2025-03-30T03:00:00+02:00", "2025-03-30T03:30:00+02:00"]),
        ("0 */2 * * *", NEW_YORK, datetime(2025, 3, 9, 0, 30, tzinfo=NEW_YORK),
         ["2025-03-09T04:00:00-04:00", "2025-03-09T06:00:00-04:00"]),
    ],
)
def test_wildcard_hour_entries_keep_real_time_cadence(
    expression: str, zone: ZoneInfo, after: datetime, expected: list[str]
) -> None:
    assert fires(cron(expression, tz=zone), after, len(expected)) == expected


def test_every_keeps_real_time_cadence_across_fall_back() -> None:
    schedule = every(minutes=30, anchor=datetime(2025, 10, 26, 0, 0, tzinfo=BERLIN))
    assert fires(schedule, datetime(2025, 10, 26, 1, 50, tzinfo=BERLIN), 4) == [
        "2025-10-26T02:00:00+02:00",
        "2025-10-26T02:30:00+02:00",
        "2025-10-26T02:00:00+01:00",
        "2025-10-26T02:30:00+01:00",
    ]


def test_instants_are_the_same_whatever_zone_after_is_given_in() -> None:
    schedule = cron("*/20 * * * *", tz=BERLIN)
    moment = datetime(2025, 10, 26, 0, 10, tzinfo=UTC)
    for _ in range(10):
        in_utc = schedule.next_fire(moment)
        in_berlin = schedule.next_fire(moment.astimezone(BERLIN))
        in_new_york = schedule.next_fire(moment.astimezone(NEW_YORK))
        assert in_utc is not None and in_utc == in_berlin == in_new_york
        moment = in_utc


# --- Calendar edges ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        (crontab(minute=0, hour=0, day_of_month=31), datetime(2025, 1, 31, 0, 0, 1, tzinfo=UTC),
         ["2025-03-31T00:00:00+00:00", "2025-05-31T00:00:00+00:00"]),
        (crontab(minute=0, hour=0, day_of_month=29, month_of_year=2), datetime(2025, 1, 1, tzinfo=UTC),
         ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]),
        (cron("59 23 28-31 * *"), datetime(2024, 2, 27, tzinfo=UTC),
         ["2024-02-28T23:59:00+00:00", "2024-02-29T23:59:00+00:00", "2024-03-28T23:59:00+00:00"]),
        (crontab(minute=0, hour=12, month_of_year="dec"), datetime(2025, 12, 31, 12, tzinfo=UTC),
         ["2026-12-01T12:00:00+00:00"]),
        (crontab(second="*/20", minute=0, hour=0), datetime(2025, 6, 1, tzinfo=UTC),
         ["2025-06-01T00:00:20+00:00", "2025-06-01T00:00:40+00:00", "2025-06-02T00:00:00+00:00"]),
    ],
)
def test_calendar_edges(schedule: object, after: datetime, expected: list[str]) -> None:
    assert fires(schedule, after, len(expected)) == expected


def test_crontab_day_of_week_zero_is_sunday_and_names_work() -> None:
    after = datetime(2025, 6, 2, tzinfo=UTC)  # a Monday
    sunday = "2025-06-08T00:00:00+00:00"
    assert fires(crontab(minute=0, hour=0, day_of_week=0), after, 1) == [sunday]
    assert fires(crontab(minute=0, hour=0, day_of_week="sun"), after, 1) == [sunday]
    assert fires(cron("0 0 * * 7"), after, 1) == [sunday]
    assert fires(cron("0 0 * * sat-sun"), after, 2) == ["2025-06-07T00:00:00+00:00", sunday]


def test_crontab_needs_both_day_fields_cron_needs_either() -> None:
    after = datetime(2025, 7, 1, tzinfo=UTC)
    # Celery's crontab: the 13th AND a Friday.
    assert fires(crontab(minute=0, hour=0, day_of_month=13, day_of_week="fri"), after, 1) == [
        "2026-02-13T00:00:00+00:00"
    ]
    # cron: the 13th OR any Friday.
    assert fires(cron("0 0 13 * fri"), after, 4) == [
        "2025-07-04T00:00:00+00:00",
        "2025-07-11T00:00:00+00:00",
        "2025-07-13T00:00:00+00:00",  # a Sunday
        "2025-07-18T00:00:00+00:00",
    ]


def test_every_counts_from_its_anchor_without_drift() -> None:
    anchor = datetime(2025, 1, 1, 0, 0, 0, 300000, tzinfo=UTC)
    schedule = every(seconds=1, anchor=anchor)
    far = datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    nxt = schedule.next_fire(far)
    assert nxt == datetime(2026, 1, 1, 0, 0, 0, 300000, tzinfo=UTC)
    assert schedule.next_fire(anchor) == anchor + timedelta(seconds=1)
    assert schedule.next_fire(anchor - timedelta(days=1)) == anchor + timedelta(seconds=1)
    assert every(timedelta(minutes=1), seconds=30).period == timedelta(seconds=90)


def test_at_fires_once() -> None:
    when = datetime(2030, 1, 1, 8, tzinfo=BERLIN)
    assert at(when).next_fire(datetime(2029, 1, 1, tzinfo=UTC)) == when
    assert at(when).next_fire(when) is None
    assert at(datetime(2030, 1, 1, 8), tz="Europe/Berlin").when == when


# --- Errors at definition ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: crontab(hour=25), "crontab hour='25': 25 is out of range 0-23"),
        (lambda: crontab(minute="*/0"), "crontab minute='*/0': step '0' must be a positive integer"),
        (lambda: crontab(day_of_week="funday"), "crontab day_of_week='funday': 'funday' is not a number"),
        (lambda: crontab(month_of_year=13), "crontab month_of_year='13': 13 is out of range 1-12"),
        (lambda: crontab(minute="10-5"), "crontab minute='10-5': range '10-5' runs backwards"),
        (lambda: cron("*/15 9-17 * *"), "expected 5 fields"),
        (lambda: cron("61 * * * *"), "cron minute='61': 61 is out of range 0-59"),
        (lambda: cron("0 0 30 feb *"), "no such day in those months"),
        (lambda: crontab(day_of_month="0"), "crontab day_of_month='0': 0 is out of range 1-31"),
        (lambda: cron("* * * * *", tz="Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        (lambda: every(seconds=0), "the period must be positive"),
        (lambda: as_schedule(object()), "not a schedule"),
    ],
)
def test_invalid_schedules_fail_at_definition_naming_the_field(make: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make()  # type: ignore[operator]
    assert message in str(info.value)


def test_next_fire_refuses_naive_datetimes() -> None:
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        cron("* * * * *").next_fire(datetime(2025, 1, 1))


# --- Persistence ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "schedule",
    [
        every(seconds=90),
        every(minutes=5, anchor=datetime(2025, 1, 1, tzinfo=UTC)),
        crontab(minute="*/15", hour="9-17", day_of_week="mon-fri", tz="Europe/Berlin"),
        crontab(second=30, minute=0, hour=3),
        cron("*/15 9-17 * * mon-fri", tz="America/New_York"),
        cron("@daily"),
        at(datetime(2030, 5, 1, 12, tzinfo=BERLIN)),
    ],
)
def test_schedules_round_trip_through_their_dict(schedule: object) -> None:
    restored = schedule_from_dict(schedule.to_dict())  # type: ignore[attr-defined]
    assert restored == schedule
    after = datetime(2025, 7, 1, 10, 7, tzinfo=UTC)
    assert restored.next_fire(after) == schedule.next_fire(after)  # type: ignore[attr-defined]


def test_crontab_takes_the_app_timezone_unless_it_names_one() -> None:
    plain = as_schedule(crontab(minute=0, hour=3), default_tz="Europe/Berlin")
    assert fires(plain, datetime(2025, 7, 1, tzinfo=UTC), 1) == ["2025-07-01T01:00:00+00:00"]
    own = as_schedule(crontab(minute=0, hour=3, tz="UTC"), default_tz="Europe/Berlin")
    assert fires(own, datetime(2025, 7, 1, tzinfo=UTC), 1) == ["2025-07-01T03:00:00+00:00"]


# --- croniter as oracle for plain (UTC, no DST) cases --------------------------------------

def random_field(rng: random.Random, low: int, high: int, names: list[str] | None = None) -> str:
    kind = rng.choice(["*", "value", "range", "step", "list", "range_step"])
    if kind == "*":
        return "*"
    if kind == "value":
        value = rng.randint(low, high)
        return names[value - low] if names and rng.random() < 0.3 else str(value)
    if kind == "range":
        a, b = sorted(rng.sample(range(low, high + 1), 2))
        return f"{a}-{b}"
    if kind == "step":
        return f"*/{rng.randint(2, max(2, (high - low) // 2))}"
    if kind == "range_step":
        a, b = sorted(rng.sample(range(low, high + 1), 2))
        return f"{a}-{b}/{rng.randint(1, 3)}"
    return ",".join(str(v) for v in sorted(rng.sample(range(low, high + 1), rng.randint(2, 4))))


DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@pytest.mark.parametrize("seed", range(8))
def test_cron_agrees_with_croniter_on_random_expressions(seed: int) -> None:
    rng = random.Random(seed)
    checked = 0
    while checked < 40:
        expression = " ".join(
            [
                random_field(rng, 0, 59),
                random_field(rng, 0, 23),
                random_field(rng, 1, 28),
                random_field(rng, 1, 12),
                random_field(rng, 0, 6, DAYS),
            ]
        )
        start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 3 * 365 * 86400))
        oracle = croniter(expression, start)
        ours = cron(expression, tz="UTC")
        moment = start
        for _ in range(6):
            expected = oracle.get_next(datetime)
            got = ours.next_fire(moment)
            assert got == expected, (expression, moment)
            moment = got
        checked += 1


@pytest.mark.parametrize("seed", range(4))
def test_crontab_agrees_with_croniter_in_and_mode(seed: int) -> None:
    # Celery's crontab requires both day fields: croniter's day_or=False is the same rule.
    rng = random.Random(1000 + seed)
    for _ in range(40):
        minute, hour = random_field(rng, 0, 59), random_field(rng, 0, 23)
        dom, month, dow = random_field(rng, 1, 28), random_field(rng, 1, 12), random_field(rng, 0, 6)
        start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 3 * 365 * 86400))
        oracle = croniter(f"{minute} {hour} {dom} {month} {dow}", start, day_or=False)
        ours = crontab(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow, tz="UTC")
        moment = start
        for _ in range(4):
            expected = oracle.get_next(datetime)
            got = ours.next_fire(moment)
            assert got == expected, (minute, hour, dom, month, dow, moment)
            moment = got


def test_celery_schedule_objects_are_taken_as_they_are() -> None:
    from celery import schedules as celery_schedules

    converted = as_schedule(celery_schedules.crontab(minute="*/15", hour="9-17", day_of_week="mon-fri"), "UTC")
    assert converted == crontab(minute="*/15", hour="9-17", day_of_week="mon-fri", tz="UTC")
    assert as_schedule(celery_schedules.schedule(timedelta(seconds=30))) == every(seconds=30)
