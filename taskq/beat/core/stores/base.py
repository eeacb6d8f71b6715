"""The schedule store protocol: entries and their state, the leader lock, and the atomic
per-(entry, instant) claim that makes every instant enqueued at most once.

``claim`` is the heart of it. In one atomic step it checks that the caller still holds the
leader lock (a deposed leader cannot enqueue), records the (entry, instant) claim (a second
claim of the same instant fails, whoever makes it), advances the entry's state (only if it
is still what the caller planned from), and, where store and broker are one server, inserts
the messages. Where they are not (``enqueues_atomically`` is False) the caller publishes
right after a successful claim; a leader killed in between loses that instant, and it is
reported as missed (never sent twice).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from taskq.beat.core.entry import Entry, EntryState
from taskq.brokers.base import Publication
from taskq.errors import TaskQError

LOCK_NAME = "beat"
CLAIM_RETENTION = 7 * 86400.0  # how long a claim record is kept (longer than any outage we replay)


class StoreError(TaskQError):
    """The schedule store failed or cannot be reached."""


class ClaimResult(enum.Enum):
    CLAIMED = "claimed"  # ours: state advanced (and messages enqueued when atomic)
    TAKEN = "taken"  # this instant was claimed before: never enqueue it again
    NOT_LEADER = "not_leader"  # the lock is not ours (any more)
    STALE = "stale"  # the entry changed or vanished since we planned: reload and plan again


@runtime_checkable
class ScheduleStore(Protocol):
    url: str
    # True when claim() also enqueues the publications it is given in the same atomic step.
    enqueues_atomically: bool
    # True when the store pushes change notifications (wait_for_change wakes at once).
    notifies: bool

    # -- entries (the API writes these; every write bumps the revision and notifies) --
    def add(self, entry: Entry, replace: bool = False) -> bool:
        """Store a new entry with its state; False if the id exists and not ``replace``."""

    def set_definition(self, entry: Entry) -> bool:
        """Rewrite an entry's definition (not its state); False if it does not exist."""

    def set_state(self, entry_id: str, state: EntryState) -> bool:
        """Rewrite an entry's state (reschedule, resume); False if it does not exist."""

    def remove(self, entry_id: str) -> bool:
        """Delete an entry; False if it did not exist."""

    def get(self, entry_id: str) -> Entry | None: ...

    def entries(self) -> list[Entry]: ...

    def revision(self) -> int:
        """A number that changes whenever an entry is added, changed or removed by the API."""

    def wait_for_change(self, timeout: float, stop: threading.Event, known: int | None = None) -> bool:
        """Sleep up to ``timeout`` seconds; True early (or at once) if the revision differs
        from ``known`` (the caller's last loaded revision), changes, or ``stop`` is set."""

    # -- leadership ------------------------------------------------------------------------
    def acquire_lock(self, owner: str, ttl: float) -> bool:
        """Take the leader lock, or renew it if ``owner`` holds it (owner checked every time)."""

    def release_lock(self, owner: str) -> None:
        """Give the lock up if ``owner`` holds it."""

    def lock_owner(self) -> str | None: ...

    def lock_remaining(self) -> float | None:
        """Seconds until the current lock expires (None: no lock), so a follower can try
        again right when a dead leader's lock runs out."""

    # -- the claim -------------------------------------------------------------------------
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
        """Atomically: lock held by owner, (entry, instant) not claimed before, entry's next
        run still ``expected_next``; then record the claim, write ``state`` and (if
        ``enqueues_atomically``) enqueue ``publications``. ``will_publish``: the caller
        publishes after the claim, so the claim stays *unsent* until ``mark_sent``."""

    def mark_sent(self, entry_id: str, instant: datetime) -> None:
        """The messages of a claimed instant were published."""

    def unsent_claim(self, entry_id: str, instant: datetime) -> bool:
        """True if the instant was claimed to be published afterwards and never marked sent
        (its leader stopped in between: the instant is lost, and is reported as missed)."""

    def close(self) -> None: ...
