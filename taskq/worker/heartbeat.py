"""A heartbeat file for container health checks (``taskq worker --check``).

Consumers touch it after each successful fetch and each claim extension, at most once a
second, so a fresh file means: the process lives and its broker loop turns. A consumer
that died is listed in ``<path>.down.<pid>`` until the pool has started it again.
"""

from __future__ import annotations

import glob
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


DOWN_SUFFIX = ".down."


class DeadConsumers:
    """The consumers of this process that are dead right now, in a file next to the heartbeat
    (``<path>.down.<pid>``, one line per consumer), so ``taskq worker --check`` fails while
    any is dead even though the others keep the heartbeat fresh. Written by the pool that
    restarts them (threads pool, prefork supervisor); gone when none is dead."""

    def __init__(self, path: str) -> None:
        self.path = f"{path}{DOWN_SUFFIX}{os.getpid()}"
        self._dead: dict[int, str] = {}

    def down(self, slot: int, reason: str) -> None:
        self._dead[slot] = reason
        self._write()

    def up(self, slot: int) -> None:
        if self._dead.pop(slot, None) is not None:
            self._write()

    def clear(self) -> None:
        self._dead.clear()
        self._write()

    def _write(self) -> None:
        try:
            if not self._dead:
                if os.path.exists(self.path):
                    os.unlink(self.path)
                return
            lines = "".join(f"consumer {slot + 1}: {reason}\n" for slot, reason in sorted(self._dead.items()))
            partial = f"{self.path}.tmp"
            with open(partial, "w") as f:
                f.write(lines)
            os.replace(partial, self.path)
        except OSError:
            pass  # a health file must never break the worker


def dead_consumers(path: str) -> list[str]:
    """What the live worker processes sharing this heartbeat path say is dead (a file left
    by a process that no longer runs is ignored)."""
    out: list[str] = []
    for marker in sorted(glob.glob(glob.escape(path + DOWN_SUFFIX) + "*")):
        pid = marker.rsplit(".", 1)[1]
        if not pid.isdigit() or not _alive(int(pid)):
            continue
        try:
            with open(marker) as f:
                out += [f"pid {pid} {line.strip()}" for line in f if line.strip()]
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
