"""When a pool starts a dead consumer again, and when it gives up on one.

A consumer that dies (a bug, a task calling ``sys.exit``, a child killed by the OOM killer)
is started again: at once the first time, after ``BACKOFF`` seconds when it died within
``QUICK`` seconds of its start, so one that dies at start does not spin. A slot whose
consumer died ``LIMIT`` times in a row, each time within ``QUICK`` seconds of starting, is
given up: it cannot work here (say, its broker refuses it), and once every slot is given up
the pool exits non-zero, for the service manager to see. A message that kills whoever runs
it is dead-lettered after ``max_deliveries`` (5 by default), long before ``LIMIT``.
"""

from __future__ import annotations

import time

QUICK = 10.0
BACKOFF = 1.0
LIMIT = 10


class RestartPolicy:
    def __init__(self) -> None:
        self._in_a_row: dict[int, int] = {}

    def crashed(self, slot: int, started_at: float) -> float | None:
        """The consumer of ``slot`` (started at ``started_at``, monotonic) died: seconds to
        wait before starting it again, or None to give the slot up."""
        now = time.monotonic()
        quick = now - started_at < QUICK
        in_a_row = self._in_a_row[slot] = self._in_a_row.get(slot, 0) + 1 if quick else 1
        if in_a_row >= LIMIT:
            return None
        return BACKOFF if quick and in_a_row > 1 else 0.0
