"""A heartbeat file for container health checks (``taskq worker --check``).

Consumers touch it after each successful fetch and each claim extension, at most once a
second, so a fresh file means: the process lives and its broker loop turns.
"""

from __future__ import annotations

import os
import time


class Heartbeat:
    def __init__(self, path: str, min_interval: float = 1.0) -> None:
        self.path = path
        self.min_interval = min_interval
        self._last = 0.0

    def beat(self) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        self._last = now
        try:
            with open(self.path, "a"):
                os.utime(self.path)
        except OSError:
            pass  # a health file must never break the worker


def heartbeat_age(path: str) -> float | None:
    """Seconds since the last beat, or None when there was none."""
    try:
        return max(0.0, time.time() - os.stat(path).st_mtime)
    except OSError:
        return None
