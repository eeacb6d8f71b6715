"""In-process schedule store: for tests and schedulers without an app (APScheduler's default)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from datetime import datetime

from taskq.beat.core.entry import Entry, EntryState
from taskq.beat.core.stores.base import ClaimResult
from taskq.brokers.base import Publication


class MemoryScheduleStore:
    enqueues_atomically = False
    notifies = True

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._entries: dict[str, Entry] = {}
        self._claims: dict[tuple[str, float], bool] = {}  # -> sent
        self._lock_owner: str | None = None
        self._lock_expires = 0.0
        self._revision = 0
        self._changed = threading.Condition()

    def _bump(self) -> None:
        with self._changed:
            self._revision += 1
            self._changed.notify_all()

    def add(self, entry: Entry, replace: bool = False) -> bool:
        with self._changed:
            if entry.id in self._entries and not replace:
                return False
            self._entries[entry.id] = copy.deepcopy(entry)
            self._bump()
        return True

    def set_definition(self, entry: Entry) -> bool:
        with self._changed:
            current = self._entries.get(entry.id)
            if current is None:
                return False
            self._entries[entry.id] = copy.deepcopy(entry.copy(state=current.state))
            self._bump()
        return True

    def set_state(self, entry_id: str, state: EntryState) -> bool:
        with self._changed:
            current = self._entries.get(entry_id)
            if current is None:
                return False
            current.state = copy.deepcopy(state)
            self._bump()
        return True

    def remove(self, entry_id: str) -> bool:
        with self._changed:
            if self._entries.pop(entry_id, None) is None:
                return False
            self._bump()
        return True

    def get(self, entry_id: str) -> Entry | None:
        with self._changed:
            entry = self._entries.get(entry_id)
            return copy.deepcopy(entry) if entry else None

    def entries(self) -> list[Entry]:
        with self._changed:
            return [copy.deepcopy(e) for e in self._entries.values()]

    def revision(self) -> int:
        return self._revision

    def wait_for_change(self, timeout: float, stop: threading.Event, known: int | None = None) -> bool:
        with self._changed:
            start = self._revision if known is None else known
            self._changed.wait_for(lambda: self._revision != start or stop.is_set(), timeout=max(timeout, 0.0))
            return self._revision != start or stop.is_set()

    def wake(self) -> None:
        """Wake a waiting scheduler without a change (stop, shutdown)."""
        with self._changed:
            self._changed.notify_all()

    def acquire_lock(self, owner: str, ttl: float) -> bool:
        with self._changed:
            now = time.time()
            if self._lock_owner in (None, owner) or self._lock_expires <= now:
                self._lock_owner, self._lock_expires = owner, now + ttl
                return True
            return False

    def release_lock(self, owner: str) -> None:
        with self._changed:
            if self._lock_owner == owner:
                self._lock_owner, self._lock_expires = None, 0.0

    def lock_owner(self) -> str | None:
        with self._changed:
            return self._lock_owner if self._lock_expires > time.time() else None

    def lock_remaining(self) -> float | None:
        with self._changed:
            remaining = self._lock_expires - time.time()
            return remaining if self._lock_owner is not None and remaining > 0 else None

    def claim(
        self,
        owner: str,
        entry_id: str,
        instant: datetime,
        expected_next: datetime | None,
        state: EntryState,
        publications: Sequence[Publication],
        will_publish: bool = False,
    ) -> ClaimResult:
        with self._changed:
            if self._lock_owner != owner or self._lock_expires <= time.time():
                return ClaimResult.NOT_LEADER
            key = (entry_id, instant.timestamp())
            if key in self._claims:
                return ClaimResult.TAKEN
            current = self._entries.get(entry_id)
            if current is None or current.state.next_run_time != expected_next:
                return ClaimResult.STALE
            self._claims[key] = not will_publish
            current.state = copy.deepcopy(state)
            return ClaimResult.CLAIMED

    def mark_sent(self, entry_id: str, instant: datetime) -> None:
        with self._changed:
            key = (entry_id, instant.timestamp())
            if key in self._claims:
                self._claims[key] = True

    def unsent_claim(self, entry_id: str, instant: datetime) -> bool:
        with self._changed:
            return self._claims.get((entry_id, instant.timestamp())) is False

    def close(self) -> None:
        pass
