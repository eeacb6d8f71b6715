"""Which runs of a task began after its result was stored: the duplicate taskq never makes.

At-least-once lets a task cut off by a SIGKILL run again. It never lets a task whose result
is stored start again: a redelivered copy of a finished task is acked without running
(worker/runner.py). Reading the stored results once after a kill does not measure that:
while the results are read, live workers may already have rerun, and stored, the tasks the
kill cut off, which then look like stored results that ran twice. So ``StoredResultsWatch``
pairs each snapshot of the stored results with the number of complete lines the marks file
had when the snapshot was over: every start line past that number began after those results
were stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import TracebackType

from tests.integration.workers import Marks

Snapshot = tuple[frozenset[str], int]  # keys whose result was stored, marks lines written after


def starts_after_stored(snapshots: Iterable[Snapshot], lines: list[tuple[str, str, int]]) -> dict[str, list[int]]:
    """Per key, the pids of runs that started after a snapshot had seen its result stored."""
    late: dict[str, set[int]] = {}
    for stored, written in snapshots:
        for event, key, pid in lines[written:]:
            if event == "start" and key in stored:
                late.setdefault(key, set()).add(pid)
    return {key: sorted(pids) for key, pids in late.items()}


class StoredResultsWatch:
    """Snapshots ``stored()`` every ``interval`` seconds on a thread while the block runs."""

    def __init__(self, stored: Callable[[], set[str]], marks: Marks, interval: float = 0.02) -> None:
        self.stored = stored
        self.marks = marks
        self.interval = interval
        self.snapshots: list[Snapshot] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stored-results-watch", daemon=True)

    def __enter__(self) -> StoredResultsWatch:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)

    def _watch(self) -> None:
        while True:
            last = self._stop.is_set()  # one more snapshot once the block is over
            stored = frozenset(self.stored())
            self.snapshots.append((stored, self.marks.complete_lines()))  # read after: sound
            if last:
                return
            self._stop.wait(self.interval)

    def starts_after_stored(self) -> dict[str, list[int]]:
        return starts_after_stored(self.snapshots, self.marks.lines())
