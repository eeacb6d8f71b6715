"""Parsing one cron field ("*/15", "9-17", "mon-fri", "1,15", 5, [0, 30]) into a set of values.

Every error names the field and the offending text, e.g.
``crontab hour='25': 25 is out of range 0-23``, so a bad schedule fails at definition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from taskq.errors import ConfigurationError

DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}

FieldSpec = str | int | Iterable[int]


@dataclass(frozen=True)
class FieldRange:
    """The bounds and names one cron field accepts."""

    name: str
    low: int
    high: int
    names: Mapping[str, int]
    # day_of_week accepts 7 as a second spelling of Sunday (cron does); it folds to 0.
    fold_to_zero: int | None = None


SECOND = FieldRange("second", 0, 59, {})
MINUTE = FieldRange("minute", 0, 59, {})
HOUR = FieldRange("hour", 0, 23, {})
DAY_OF_MONTH = FieldRange("day_of_month", 1, 31, {})
MONTH_OF_YEAR = FieldRange("month_of_year", 1, 12, MONTH_NAMES)
DAY_OF_WEEK = FieldRange("day_of_week", 0, 6, DAY_NAMES, fold_to_zero=7)


class FieldError(ConfigurationError):
    """A cron field that cannot be parsed; the message names the field and the bad text."""


def spec_text(spec: FieldSpec) -> str:
    """The canonical text of a field spec, used in messages and for persistence."""
    if isinstance(spec, str):
        return spec.strip().lower()
    if isinstance(spec, int):
        return str(spec)
    return ",".join(str(v) for v in spec)


def is_wildcard(spec: FieldSpec) -> bool:
    """True for ``*`` and ``*/n``: the field follows real time rather than a wall-clock value."""
    return isinstance(spec, str) and spec.strip().startswith("*")


def parse_field(spec: FieldSpec, field: FieldRange, owner: str) -> frozenset[int]:
    """Parse a field spec into the sorted set of values it allows.

    ``owner`` is how the schedule was written (``crontab`` or ``cron``), for messages.
    """
    text = spec_text(spec)
    where = f"{owner} {field.name}={text!r}"
    if isinstance(spec, bool):
        raise FieldError(f"{where}: a boolean is not a {field.name}")
    if not isinstance(spec, (str, int)):
        try:
            items = [int(v) for v in spec]
        except (TypeError, ValueError):
            raise FieldError(f"{where}: expected a string, an int or a list of ints") from None
        text = ",".join(str(v) for v in items)
    if not text:
        raise FieldError(f"{where}: empty field")
    values: set[int] = set()
    for part in text.split(","):
        values.update(_parse_part(part.strip(), field, where))
    return frozenset(values)


def _parse_part(part: str, field: FieldRange, where: str) -> range | list[int]:
    if not part:
        raise FieldError(f"{where}: empty list item")
    base, _, step_text = part.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise FieldError(f"{where}: step {step_text!r} must be a positive integer")
        step = int(step_text)
    if base == "*":
        low, high = field.low, field.high
    elif "-" in base.lstrip("-"):
        first, _, last = base.partition("-")
        low, high = _value(first, field, where), _value(last, field, where)
        if low > high:
            # A wrapping day range such as "sat-sun" (6-0) or "fri-7": keep it as cron users mean it.
            if field is DAY_OF_WEEK and high in (0, 7):
                high = 7
            else:
                raise FieldError(f"{where}: range {base!r} runs backwards")
    else:
        low = _value(base, field, where)
        # "5/15" means from 5 to the end in steps of 15, as in cron.
        high = field.high if step_text else low
    out = [v for v in range(low, high + 1, step)]
    if field.fold_to_zero is not None:
        out = [0 if v == field.fold_to_zero else v for v in out]
    return out


def _value(text: str, field: FieldRange, where: str) -> int:
    if text in field.names:
        return field.names[text]
    try:
        number = int(text)
    except ValueError:
        known = f" (or {', '.join(field.names)})" if field.names else ""
        raise FieldError(f"{where}: {text!r} is not a number{known}") from None
    upper = field.fold_to_zero if field.fold_to_zero is not None else field.high
    if not field.low <= number <= upper:
        raise FieldError(f"{where}: {number} is out of range {field.low}-{field.high}")
    return number
