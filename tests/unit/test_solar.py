"""solar() against Celery's own (ephem's) event times, for a few places and dates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from taskq.beat.core.schedules import as_schedule, schedule_from_dict
from taskq.errors import ConfigurationError
from taskq.schedules import solar

ephem = pytest.importorskip("ephem")  # Celery's solar needs it (the dev extra installs it)
celery_schedules = pytest.importorskip("celery.schedules")

PLACES = {"Paris": (48.85, 2.35), "Sydney": (-33.87, 151.21), "New York": (40.71, -74.0), "Quito": (-0.18, -78.47)}
# Not the first nights of astronomical darkness after a northern summer: there the sun dips
# below -18 degrees by less than the formulas' 0.01 degree, and taskq may find it a day later.
DATES = [
    datetime(2026, 1, 15, 3, tzinfo=timezone.utc),
    datetime(2026, 6, 21, 0, tzinfo=timezone.utc),
    datetime(2026, 9, 1, 17, tzinfo=timezone.utc),
    datetime(2025, 3, 20, 12, 30, tzinfo=timezone.utc),
    datetime(2027, 10, 31, 22, tzinfo=timezone.utc),
]
EVENTS = sorted(celery_schedules.solar._all_events)


def celery_next(event: str, lat: float, lon: float, after: datetime) -> datetime:
    theirs = celery_schedules.solar(event, lat, lon)
    theirs.cal.date = after
    return theirs._next_event(ephem.Date(after)).datetime().replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("event", EVENTS)
def test_solar_events_as_celery_computes_them(event: str) -> None:
    for place, (lat, lon) in PLACES.items():
        for after in DATES:
            ours = solar(event, lat, lon).next_fire(after)
            expected = celery_next(event, lat, lon, after)
            assert ours is not None
            assert abs(ours - expected) < timedelta(seconds=30), (place, after, ours, expected)
            assert ours > after


def test_next_fire_is_strictly_after_and_keeps_the_zone() -> None:
    berlin = solar("sunset", 52.52, 13.40)
    first = berlin.next_fire(DATES[0])
    assert first is not None
    again = berlin.next_fire(first)
    assert again is not None and timedelta(hours=23) < again - first < timedelta(hours=25)
    from zoneinfo import ZoneInfo

    local = berlin.next_fire(DATES[0].astimezone(ZoneInfo("Europe/Berlin")))
    assert local == first and local is not None and local.tzinfo == ZoneInfo("Europe/Berlin")


def test_polar_night_finds_the_next_sunrise_weeks_later() -> None:
    tromso = solar("sunrise", 69.65, 18.96)
    after = datetime(2026, 12, 1, tzinfo=timezone.utc)
    ours = tromso.next_fire(after)
    expected = celery_next("sunrise", 69.65, 18.96, after)
    assert ours is not None and abs(ours - expected) < timedelta(minutes=5)
    assert ours - after > timedelta(days=30)


def test_stored_and_converted_from_celery() -> None:
    ours = solar("dusk_civil", 48.85, 2.35)
    assert schedule_from_dict(ours.to_dict()) == ours
    assert as_schedule(celery_schedules.solar("dusk_civil", 48.85, 2.35)) == ours


@pytest.mark.parametrize(
    ("args", "text"),
    [(("noon", 0, 0), "unknown event 'noon'"), (("sunset", 91, 0), "latitude"), (("sunset", 0, 181), "longitude")],
)
def test_bad_solar_is_one_line(args: tuple[str, float, float], text: str) -> None:
    with pytest.raises(ConfigurationError, match=text):
        solar(*args)
