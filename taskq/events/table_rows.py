"""What the table-backed buses (SQLite, PostgreSQL) share: how an event is stored, how a
batch of rows is read back, and how far the table is trimmed.

Bounded: every ``TRIM_EVERY`` inserts a publisher deletes all but the newest ``KEEP`` rows, so
a busy worker's table does not grow. A subscriber starts at the newest row and reads the rows
after the last it saw, ``BATCH`` at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

KEEP = 10_000
TRIM_EVERY = 500
BATCH = 1000


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event)


def trim_below(sent: int, last_id: int) -> int | None:
    """After the ``sent``-th insert (id ``last_id``): delete rows up to this id, or None."""
    return last_id - KEEP if sent % TRIM_EVERY == 0 else None


def decode(rows: Sequence[tuple[int, str]]) -> Iterator[dict[str, Any]]:
    """The events in a batch of (id, body) rows; a row that is not a JSON object is skipped."""
    for _, body in rows:
        try:
            event = json.loads(body)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event
