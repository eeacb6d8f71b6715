"""Beat really enqueues what a Celery-style configuration declares: beat_schedule entries
(float seconds, timedelta, crontab) and add_periodic_task calls (at import and in an
on_after_configure handler), run by `taskq worker --beat` on SQLite and counted."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.workers import WorkerFactory, wait_until

WORDS = {"float": 0.5, "delta": 0.5, "cron": 1.0, "signal": 0.5, "module": 0.5}  # word -> period, seconds


def test_beat_runs_every_entry_at_its_period(workers: WorkerFactory, tmp_path: Path) -> None:
    # Given a worker with embedded beat on the Celery-style app
    started = time.monotonic()
    worker = workers.start("-A", "celery_beat_tasks:app", "--beat", "-c", "2", "-P", "threads")
    # When it runs long enough for several periods of each entry
    wait_until(lambda: all(workers.marks.count("start")[w] >= 4 for w in WORDS), 60, "4 runs of every entry")
    assert worker.stop() == 0
    elapsed = time.monotonic() - started
    # Then each entry ran, and no more often than its period allows
    runs = workers.marks.count("start")
    for word, period in WORDS.items():
        assert 4 <= runs[word] <= elapsed / period + 2, (word, runs[word], elapsed)
