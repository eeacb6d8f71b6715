"""One event: a dict with Celery's standard fields (docs/userguide/monitoring.rst, event reference).

``type``, ``hostname``, ``timestamp`` (seconds since the epoch), ``utcoffset`` (hours, as
celery.utils.time.utcoffset: seconds *west* of UTC / 3600), ``pid`` and ``clock`` (a Lamport
clock: every sent event moves it forward, every received one moves it past the sender's).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any


class LamportClock:
    """A thread-safe Lamport clock (kombu's has the same rule: forward on send, max+1 on receive)."""

    def __init__(self, value: int = 0) -> None:
        self.value = value
        self._lock = threading.Lock()

    def forward(self) -> int:
        with self._lock:
            self.value += 1
            return self.value

    def renew_lock(self) -> None:
        """In a forked child: another thread of the parent may have held the lock at the fork."""
        self._lock = threading.Lock()

    def adjust(self, other: int) -> int:
        with self._lock:
            self.value = max(self.value, int(other)) + 1
            return self.value


def utcoffset() -> float:
    """Celery's sign and unit: hours west of UTC (0 on a UTC host)."""
    if time.localtime().tm_isdst:
        return time.altzone / 3600
    return time.timezone / 3600


def make_event(type_: str, hostname: str, clock: LamportClock | None, **fields: Any) -> dict[str, Any]:
    """The event ``type_`` from ``hostname`` with Celery's standard fields filled in."""
    event: dict[str, Any] = {
        "hostname": hostname,
        "utcoffset": utcoffset(),
        "pid": os.getpid(),
        "clock": clock.forward() if clock is not None else 0,
        **fields,
        "type": type_,
    }
    event.setdefault("timestamp", time.time())
    return event


def routing_key(type_: str) -> str:
    """Celery routes ``task-succeeded`` as ``task.succeeded`` on the topic exchange."""
    return type_.replace("-", ".")
