"""In-process result backend: backends with the same ``memory://name`` URL share results."""

from __future__ import annotations

import json
import threading
import time

from taskq.backends.base import ResultBackend
from taskq.config import Settings

# Per URL: the condition, values (bytes, expiry) and counters (count, expiry), expiries in unix time.
_STORES: dict[str, tuple[threading.Condition, dict[str, tuple[bytes, float]], dict[str, tuple[int, float]]]] = {}
_STORES_LOCK = threading.Lock()


class MemoryBackend(ResultBackend):
    def __init__(self, url: str = "memory://", settings: Settings | None = None) -> None:
        super().__init__(url, settings or Settings())
        with _STORES_LOCK:
            self._cond, self._values, self._counters = _STORES.setdefault(url, (threading.Condition(), {}, {}))

    def _get(self, key: str) -> bytes | None:
        with self._cond:
            item = self._values.get(key)
            if item is None or item[1] < time.time():
                return None
            return item[0]

    def _set(self, key: str, value: bytes, ttl: float) -> None:
        with self._cond:
            self._values[key] = (value, time.time() + ttl)
            self._cond.notify_all()

    def _delete(self, key: str) -> None:
        with self._cond:
            self._values.pop(key, None)

    def _incr(self, key: str, ttl: float) -> int:
        now = time.time()
        with self._cond:
            count, until = self._counters.get(key, (0, 0.0))
            count = count + 1 if until >= now else 1  # an expired counter starts again, as in Redis
            self._counters[key] = (count, now + ttl if ttl > 0 else float("inf"))
            return count

    supports_chords = True

    def _chord_add(self, key: str, member: str, value: bytes, ttl: float) -> int:
        # The members live as one JSON object among the values; the lock makes the add atomic.
        with self._cond:
            item = self._values.get(key)
            members: dict[str, str] = json.loads(item[0]) if item and item[1] >= time.time() else {}
            members.setdefault(member, value.decode())
            self._values[key] = (json.dumps(members).encode(), time.time() + ttl)
            return len(members)

    def _chord_members(self, key: str) -> list[bytes]:
        raw = self._get(key)
        return [] if raw is None else [v.encode() for v in json.loads(raw).values()]

    def reset_counter(self, key: str) -> None:
        with self._cond:
            self._counters.pop(key, None)

    def _wait(self, key: str, timeout: float) -> None:
        with self._cond:
            self._cond.wait(min(timeout, 1.0))

    def cleanup(self) -> int:
        now = time.time()
        with self._cond:
            doomed = [k for k, (_, until) in self._values.items() if until < now]
            for key in doomed:
                del self._values[key]
            return len(doomed)
