"""The taskq app of ``python -m bench.backlog --countdown``: a task that records how late it ran.

Each task gets its due time (epoch seconds, the ETA it was sent with) and adds ``now - due``
to a list in its process; a thread in each worker process pushes that list to Redis every
0.1 s in one RPUSH, so recording costs a million tasks no extra round trip each.
"""

from __future__ import annotations

import sys
import threading
import time

import redis

from bench.adapters.taskq_app import URL, app

LATENESS_KEY = "bench:lateness"
FLUSH_EVERY = 0.1  # seconds

_pending: list[float] = []
_lock = threading.Lock()
_flusher: threading.Thread | None = None


@app.task(name="bench.due")
def due(at: float) -> None:
    late = time.time() - at
    with _lock:
        _pending.append(late)
        if _flusher is None:
            _start_flusher()


def _start_flusher() -> None:
    """Started on the first task in each worker process (after the fork); called under _lock."""
    global _flusher
    client = redis.Redis.from_url(URL)

    def flush_forever() -> None:
        while True:
            time.sleep(FLUSH_EVERY)
            with _lock:
                batch = _pending[:]
                _pending.clear()
            if batch:
                client.rpush(LATENESS_KEY, *batch)

    _flusher = threading.Thread(target=flush_forever, name="bench-lateness", daemon=True)
    _flusher.start()


def worker_command() -> list[str]:
    return [sys.executable, "-m", "taskq", "worker", "-A", "bench.countdown_app:app", "-c", "2", "-P", "prefork",
            "-l", "warning"]  # fmt: skip
