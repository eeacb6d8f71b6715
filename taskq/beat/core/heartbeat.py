"""The heartbeat file ``taskq beat --check`` reads: when the loop last turned, and as what."""

from __future__ import annotations

import os
import time

HEARTBEAT_EVERY = 1.0  # at most one write a second, unless the role changes


class HeartbeatFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self._last = 0.0
        self._role = ""

    def beat(self, role: str, owner: str) -> None:
        """Write ``<unix time> <leader|follower> <owner>``; replaced atomically, so a
        reader never sees half a line."""
        now = time.time()
        if now - self._last < HEARTBEAT_EVERY and role == self._role:
            return
        self._last, self._role = now, role
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as fh:
                fh.write(f"{now!r} {role} {owner}\n")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a health file must never stop beat; --check reports it stale


def heartbeat_age(path: str) -> float | None:
    """Seconds since the heartbeat was written, or None if there is none."""
    try:
        with open(path) as fh:
            stamp = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - stamp
