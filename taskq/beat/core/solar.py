"""``solar(event, lat, lon)``: Celery's solar schedule, computed here without ephem.

Events and their meanings are Celery's (celery/schedules.py): the sun's centre crossing
-18/-12/-6 degrees for astronomical/nautical/civil dawn and dusk, its upper limb crossing
-0:34 for sunrise and sunset, the meridian for solar noon; no atmospheric refraction beyond
that (Celery sets ephem's pressure to 0) and sea level. The sun's position comes from the
Astronomical Almanac's low-precision formulas (0.01 degree, 1950-2050): event times agree
with Celery's (ephem's) to within seconds at ordinary latitudes, checked in
tests/unit/test_solar.py. Pure functions of time, like every schedule here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from taskq.beat.core.walltime import to_local
from taskq.errors import ConfigurationError

# event -> (altitude of the sun's centre in degrees, "rising" | "setting" | "transit")
_SEMIDIAMETER = 16.0 / 60  # the sun's mean apparent radius, degrees: sunrise is its upper limb
EVENTS: dict[str, tuple[float, str]] = {
    "dawn_astronomical": (-18.0, "rising"),
    "dawn_nautical": (-12.0, "rising"),
    "dawn_civil": (-6.0, "rising"),
    "sunrise": (-34.0 / 60 - _SEMIDIAMETER, "rising"),
    "solar_noon": (0.0, "transit"),
    "sunset": (-34.0 / 60 - _SEMIDIAMETER, "setting"),
    "dusk_civil": (-6.0, "setting"),
    "dusk_nautical": (-12.0, "setting"),
    "dusk_astronomical": (-18.0, "setting"),
}
_J2000 = datetime(2000, 1, 1, 12, tzinfo=timezone.utc)
_STEP = timedelta(minutes=5)  # scan step: no event pair is closer together than this
_SEARCH_DAYS = 367  # Celery searches a year ahead for events that do not happen every day


@dataclass(frozen=True)
class solar:
    """Fire at a solar event at a place: ``solar("sunset", 52.52, 13.40)``."""

    event: str
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ConfigurationError(f"solar: unknown event {self.event!r} (one of {', '.join(sorted(EVENTS))})")
        if not -90 <= self.lat <= 90:
            raise ConfigurationError(f"solar: latitude {self.lat!r} is not within -90..90")
        if not -180 <= self.lon <= 180:
            raise ConfigurationError(f"solar: longitude {self.lon!r} is not within -180..180")

    def next_fire(self, after: datetime) -> datetime | None:
        """The first time of the event strictly after ``after``; None if it does not happen
        within a year (the sun at a pole)."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ConfigurationError(f"next_fire(after) must be timezone-aware, got naive {after.isoformat()}")
        start = after.astimezone(timezone.utc)
        altitude, kind = EVENTS[self.event]
        value = self._measure(kind, altitude)
        t0, v0 = start, value(start)
        for _ in range(int(timedelta(days=_SEARCH_DAYS) / _STEP)):
            t1 = t0 + _STEP
            v1 = value(t1)
            if v0 < 0 <= v1 and (kind != "transit" or v1 - v0 < 90):  # a crossing, not the hour angle's wrap
                found = _bisect(value, t0, t1)
                if found > start:
                    return to_local(found, after.tzinfo)
            t0, v0 = t1, v1
        return None

    def _measure(self, kind: str, altitude: float) -> Any:
        """A function of time that crosses 0 upwards at the event."""
        lat, lon = self.lat, self.lon
        if kind == "transit":
            return lambda t: _wrap(_hour_angle(t, lon))
        sign = 1.0 if kind == "rising" else -1.0
        return lambda t: sign * (_altitude(t, lat, lon) - altitude)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "solar", "event": self.event, "lat": self.lat, "lon": self.lon}

    def __repr__(self) -> str:
        return f"<solar: {self.event} at latitude {self.lat}, longitude: {self.lon}>"


def _bisect(value: Any, low: datetime, high: datetime) -> datetime:
    """The crossing between ``low`` (below 0) and ``high`` (at or above 0), to 10 ms."""
    while high - low > timedelta(milliseconds=10):
        middle = low + (high - low) / 2
        if value(middle) < 0:
            low = middle
        else:
            high = middle
    return high


def _sun(t: datetime) -> tuple[float, float]:
    """The sun's apparent right ascension and declination, degrees, at ``t`` (UTC)."""
    n = (t - _J2000).total_seconds() / 86400.0
    mean_longitude = 280.460 + 0.9856474 * n
    g = math.radians(357.528 + 0.9856003 * n)
    ecliptic = math.radians(mean_longitude + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    obliquity = math.radians(23.439 - 0.0000004 * n)
    ra = math.degrees(math.atan2(math.cos(obliquity) * math.sin(ecliptic), math.cos(ecliptic)))
    dec = math.degrees(math.asin(math.sin(obliquity) * math.sin(ecliptic)))
    return ra, dec


def _sidereal(t: datetime) -> float:
    """Greenwich mean sidereal time, degrees."""
    n = (t - _J2000).total_seconds() / 86400.0
    return (280.46061837 + 360.98564736629 * n) % 360.0


def _hour_angle(t: datetime, lon: float) -> float:
    ra, _ = _sun(t)
    return _sidereal(t) + lon - ra


def _wrap(degrees: float) -> float:
    """An angle in (-180, 180]."""
    return -((-degrees + 180.0) % 360.0 - 180.0)


def _altitude(t: datetime, lat: float, lon: float) -> float:
    ra, dec = _sun(t)
    hour_angle = math.radians(_sidereal(t) + lon - ra)
    phi, delta = math.radians(lat), math.radians(dec)
    sin_alt = math.sin(phi) * math.sin(delta) + math.cos(phi) * math.cos(delta) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_alt))))
