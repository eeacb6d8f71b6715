"""One schedule store over several job stores, so the one core serves all of a scheduler's
job stores: reads merge them, writes go to the store that holds the job, the leader lock
is held in every store (each store's claim checks its own lock).

Change notices: with one job store, that store's own (pub/sub, data_version); with several,
every store is asked in turn, in slices of ``SLICE`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from taskq.beat.core.entry import Entry, EntryState
from taskq.beat.core.stores.base import ClaimResult, ScheduleStore
from taskq.brokers.base import Publication

SLICE = 0.5


class JobStoreRouter:
    notifies = True

    def __init__(self, stores: dict[str, ScheduleStore], target: Callable[[], str]) -> None:
        self.stores = stores  # the scheduler's live alias -> store mapping
        self._target = target  # the alias a new entry goes to (set by add_job)

    @property
    def url(self) -> str:
        return ", ".join(store.url for store in self.stores.values()) or "no job store"

    @property
    def enqueues_atomically(self) -> bool:  # type: ignore[override]
        return len(self.stores) == 1 and next(iter(self.stores.values())).enqueues_atomically

    def alias_of(self, entry_id: str) -> str | None:
        for alias, store in list(self.stores.items()):
            if store.get(entry_id) is not None:
                return alias
        return None

    def _holder(self, entry_id: str) -> ScheduleStore | None:
        alias = self.alias_of(entry_id)
        return self.stores.get(alias) if alias is not None else None

    # -- entries ---------------------------------------------------------------------------
    def add(self, entry: Entry, replace: bool = False) -> bool:
        holder = self._holder(entry.id)
        target = self.stores[self._target()]
        if holder is not None and holder is not target:
            if not replace:
                return False
            holder.remove(entry.id)
        return target.add(entry, replace)

    def set_definition(self, entry: Entry) -> bool:
        holder = self._holder(entry.id)
        return holder is not None and holder.set_definition(entry)

    def set_state(self, entry_id: str, state: EntryState) -> bool:
        holder = self._holder(entry_id)
        return holder is not None and holder.set_state(entry_id, state)

    def remove(self, entry_id: str) -> bool:
        holder = self._holder(entry_id)
        return holder is not None and holder.remove(entry_id)

    def get(self, entry_id: str) -> Entry | None:
        holder = self._holder(entry_id)
        return holder.get(entry_id) if holder is not None else None

    def entries(self) -> list[Entry]:
        return [entry for store in list(self.stores.values()) for entry in store.entries()]

    def revision(self) -> int:
        # The sum changes whenever one store's revision does (each only grows); the store
        # count is mixed in so that adding or removing a store reads as a change too.
        stores = list(self.stores.values())
        return sum(store.revision() for store in stores) * 1000 + len(stores)

    def wait_for_change(self, timeout: float, stop: threading.Event, known: int | None = None) -> bool:
        stores = list(self.stores.values())
        if len(stores) == 1:
            return stores[0].wait_for_change(timeout, stop, None if known is None else (known - 1) // 1000)
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            if known is not None and self.revision() != known:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            stop.wait(min(SLICE, remaining))
        return True

    def wake(self) -> None:
        """Wake a scheduler waiting on a store's change notice (stop, resume, wakeup)."""
        for store in list(self.stores.values()):
            wake = getattr(store, "wake", None)
            if wake is not None:
                wake()

    # -- leadership ---------------------------------------------------------------------------
    def acquire_lock(self, owner: str, ttl: float) -> bool:
        return all([store.acquire_lock(owner, ttl) for store in list(self.stores.values())])

    def release_lock(self, owner: str) -> None:
        for store in list(self.stores.values()):
            store.release_lock(owner)

    def lock_owner(self) -> str | None:
        owners = {store.lock_owner() for store in self.stores.values()}
        return owners.pop() if len(owners) == 1 else None

    def lock_remaining(self) -> float | None:
        remaining = [r for r in (store.lock_remaining() for store in self.stores.values()) if r is not None]
        return max(remaining) if remaining else None

    # -- the claim -----------------------------------------------------------------------------
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
        holder = self._holder(entry_id)
        if holder is None:
            return ClaimResult.STALE
        if publications and not holder.enqueues_atomically:
            will_publish, publications = True, []
        return holder.claim(owner, entry_id, instant, expected_next, state, publications, will_publish)

    def mark_sent(self, entry_id: str, instant: datetime) -> None:
        holder = self._holder(entry_id)
        if holder is not None:
            holder.mark_sent(entry_id, instant)

    def unsent_claim(self, entry_id: str, instant: datetime) -> bool:
        holder = self._holder(entry_id)
        return holder is not None and holder.unsent_claim(entry_id, instant)

    def close(self) -> None:
        for store in list(self.stores.values()):
            store.close()
