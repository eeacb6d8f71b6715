"""The one scheduling core. ``tick()`` does one pass and returns how long to sleep; the run
modes (blocking, thread, asyncio, worker-embedded) only call it and wait.

One pass: keep or seek the leader lock (renewed every third of its TTL, owner checked by
the store each time), reload entries when the store's revision moved, and for each due
entry follow its plan: claim each instant in the store (at most once per (entry, instant),
enqueued in the same step where the store allows), report what happened through the event
sink. The sleep lasts until the next due instant or lock renewal, whichever comes first:
never a fixed polling tick for due work.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone

from taskq.beat.core import hook as ev
from taskq.beat.core.beat_schedule import sync_config_entries
from taskq.beat.core.entry import DEFAULT_EXECUTOR, Entry, EntryState
from taskq.beat.core.heartbeat import HeartbeatFile
from taskq.beat.core.plan import Plan, lateness, next_wakeup, plan
from taskq.beat.core.stores.base import ClaimResult, ScheduleStore, StoreError
from taskq.beat.core.submit import Submitter
from taskq.brokers.base import Publication
from taskq.display import redact
from taskq.errors import TaskQError

Clock = Callable[[], datetime]
DEFAULT_LOCK_TTL = 30.0
ERROR_BACKOFF = 1.0  # after a store or broker failure, try again this soon
LOCK_EXPIRY_SLACK = 0.005
PRECISE_TAIL = 0.02  # the end of each sleep is a plain timed wait, for precision


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SchedulerCore:
    def __init__(
        self,
        store: ScheduleStore,
        submitter: Submitter | Mapping[str, Submitter],
        *,
        clock: Clock = utc_now,
        sink: ev.EventSink | None = None,
        lock_ttl: float = DEFAULT_LOCK_TTL,
        owner: str | None = None,
        config_entries: Sequence[Entry] = (),
        heartbeat_path: str | None = None,
    ) -> None:
        self.store = store
        # Executors by alias (APScheduler's word); an entry names one, "broker" by default.
        self.submitters: dict[str, Submitter] = (
            dict(submitter) if isinstance(submitter, Mapping) else {DEFAULT_EXECUTOR: submitter}
        )
        self.clock = clock
        self.sink: ev.FanOut = ev.FanOut([sink or ev.log_event])
        self.lock_ttl = lock_ttl
        self.owner = owner or new_owner_id()
        self.config_entries = list(config_entries)
        self.heartbeat = HeartbeatFile(heartbeat_path) if heartbeat_path else None
        self.entries: dict[str, Entry] = {}
        self.is_leader = False
        self._revision: int | None = None
        self._maybe_changed = True  # the store reported a change since the last reload
        self._lock_due: datetime | None = None  # when to renew (leader) or try again (follower)
        self._interrupt = threading.Event()
        self._stopping = False

    # -- reporting ---------------------------------------------------------------------
    def emit(
        self,
        kind: str,
        entry_id: str | None = None,
        *,
        instants: Sequence[datetime] = (),
        task_ids: Sequence[str] = (),
        **fields: object,
    ) -> None:
        self.sink(ev.BeatEvent(kind, entry_id, tuple(instants), tuple(task_ids), dict(fields)))

    # -- one pass -----------------------------------------------------------------------
    def tick(self) -> float:
        """Do everything due now; return seconds until something is due next."""
        try:
            if self._maybe_changed or self._revision is None:
                self._maybe_changed = False
                self._reload_if_changed()
            was_leader = self.is_leader
            if was_leader:
                self._run_due()  # due work first: each claim checks the lock in the store anyway
            self._leadership()
            if self.is_leader and not was_leader:
                self._run_due()
        except (StoreError, TaskQError, OSError) as exc:
            self.emit(ev.ERROR, message=f"{type(exc).__name__}: {exc}")
            self._write_heartbeat()
            return ERROR_BACKOFF
        self._write_heartbeat()
        return self._sleep_time()

    def _run_due(self) -> None:
        now = self.clock()
        for entry in sorted(self.entries.values(), key=lambda e: e.due_time() or now):
            due = entry.due_time()
            if due is None or due > now:
                continue
            if not self._run_entry(entry, now):
                break

    def _sleep_time(self) -> float:
        now = self.clock()
        next_due = next_wakeup(list(self.entries.values())) if self.is_leader else None
        wake_times = [t for t in (self._lock_due, next_due) if t is not None]
        if not wake_times:
            return self.lock_ttl / 3
        return max(0.0, (min(wake_times) - now).total_seconds())

    def _leadership(self) -> None:
        now = self.clock()
        if self._lock_due is not None and now < self._lock_due:
            return
        held = self.store.acquire_lock(self.owner, self.lock_ttl)
        retry = self.lock_ttl / 3
        if not held:
            # Try again right when the leader's lock would run out, so that a dead leader
            # is replaced within the lock TTL, not a renewal period later.
            remaining = self.store.lock_remaining()
            retry = min(retry, (remaining or 0.0) + LOCK_EXPIRY_SLACK)
        self._lock_due = now + _seconds(retry)
        if held and not self.is_leader:
            self.is_leader = True
            self.emit(ev.LEADER_ELECTED, owner=self.owner)
            sync_config_entries(self.store, self.config_entries, now)
            self._revision = None  # load everything afresh as leader
            self._reload_if_changed()
            self._report_lost_instants()
        elif not held and self.is_leader:
            self._lost_leadership()

    def _lost_leadership(self) -> None:
        self.is_leader = False
        self.emit(ev.LEADER_LOST, owner=self.owner)

    def _reload_if_changed(self) -> None:
        revision = self.store.revision()
        if revision == self._revision:
            return
        self._revision = revision
        fresh = {e.id: e for e in self.store.entries()}
        for entry_id in self.entries.keys() - fresh.keys():
            self.emit(ev.ENTRY_REMOVED, entry_id)
        for entry_id, entry in fresh.items():
            old = self.entries.get(entry_id)
            if old is None:
                self.emit(ev.ENTRY_ADDED, entry_id, task=entry.task)
            elif not old.same_definition(entry):
                self.emit(ev.ENTRY_MODIFIED, entry_id, task=entry.task)
        self.entries = fresh

    def _run_entry(self, entry: Entry, now: datetime) -> bool:
        """Follow the entry's plan. False when leadership was lost (stop this pass)."""
        todo = plan(entry, now)
        if todo is None or todo.last_due is None:
            return True
        # Nothing runnable (all past the grace time): consume the last instant so the state moves on.
        runs = list(todo.run) or [todo.last_due]
        for index, instant in enumerate(runs):
            following = runs[index + 1] if index + 1 < len(runs) else todo.next_run_time
            result = self._claim(entry, instant, following, submit=bool(todo.run))
            if result is ClaimResult.NOT_LEADER:
                return False
            if result is not ClaimResult.CLAIMED:
                return True  # the entry changed or another beat took it: plan again next pass
            if index == 0:
                # Reported once this beat owns the plan (another beat may have acted on it).
                self._report_plan_misses(entry, todo)
        return True

    def _report_plan_misses(self, entry: Entry, todo: Plan) -> None:
        if todo.missed_count:
            self.emit(ev.MISSED, entry.id, instants=todo.missed, count=todo.missed_count, reason="misfire_grace_time")
        if todo.coalesced_count:
            self.emit(ev.MISSED, entry.id, instants=todo.coalesced, count=todo.coalesced_count, reason="coalesced")

    def _claim(self, entry: Entry, instant: datetime, following: datetime | None, *, submit: bool) -> ClaimResult:
        """Claim one instant (with its run, or just consuming it when ``submit`` is False)."""
        submitter = self.submitters.get(entry.executor)
        if submit and submitter is None:
            self.emit(ev.ERROR, entry.id, message=f"entry {entry.id!r}: no executor {entry.executor!r}")
            submit = False
        pending = list(entry.state.pending)
        publications: list[Publication] = []
        limit = entry.policy.max_instances
        if submit and limit is not None and submitter is not None:
            pending = submitter.unfinished(pending)
            if len(pending) >= limit:
                self.emit(ev.MAX_INSTANCES, entry.id, instants=[instant], unfinished=len(pending), max_instances=limit)
                submit = False
        # The state if this instant is consumed without a run (skipped, or taken by another beat).
        consumed = EntryState(next_run_time=following, last_run_time=instant, pending=pending)
        state = consumed
        run_id = entry.task_id(instant)
        if submit and submitter is not None:
            publications = submitter.publications(entry, instant)
            if limit is not None:
                state = EntryState(following, instant, pending + submitter.track(entry, [run_id]))
        enqueued = self.store.enqueues_atomically and bool(publications)
        result = self.store.claim(
            self.owner,
            entry.id,
            instant,
            entry.state.next_run_time,
            state,
            publications if enqueued else [],
            will_publish=submit and not enqueued,
        )
        if result is ClaimResult.NOT_LEADER:
            self._lost_leadership()
            return result
        if result is ClaimResult.STALE:
            self._revision = None  # reload on the next pass
            self._refresh(entry.id)
            return result
        if result is ClaimResult.TAKEN:
            self.emit(ev.ALREADY_CLAIMED, entry.id, instants=[instant])
            self._refresh(entry.id, advance_past=instant, state=consumed)
            return result
        entry.state = state
        if submit and submitter is not None:
            self._start(submitter, entry, instant, publications, enqueued, run_id)
        if following is None and entry.source == "api":
            self._remove_finished(entry)
        return result

    def _start(
        self,
        submitter: Submitter,
        entry: Entry,
        instant: datetime,
        publications: list[Publication],
        enqueued: bool,
        run_id: str,
    ) -> None:
        try:
            submitter.start(entry, instant, publications, enqueued)
        except (TaskQError, OSError) as exc:
            # Claimed but not started: this instant is lost (never run twice). Say so.
            self.emit(ev.MISSED, entry.id, instants=[instant], count=1, reason=f"could not start: {exc}")
            self._settle(entry.id, instant)
            return
        self.emit(
            ev.SUBMITTED,
            entry.id,
            instants=[instant],
            task_ids=[run_id],
            task=entry.task,
            executor=entry.executor,
            lateness=lateness(entry, instant, self.clock()),
        )
        if not enqueued:
            self._settle(entry.id, instant)  # after the run is reported: off the timing path

    def _remove_finished(self, entry: Entry) -> None:
        """A job added at runtime whose schedule has no more instants (a past at()) goes, as
        in APScheduler; configured entries stay (the configuration would bring them back)."""
        if self.store.remove(entry.id):
            self.entries.pop(entry.id, None)
            self.emit(ev.ENTRY_REMOVED, entry.id, reason="schedule finished")

    def _settle(self, entry_id: str, instant: datetime) -> None:
        try:
            self.store.mark_sent(entry_id, instant)
        except (StoreError, TaskQError, OSError) as exc:
            self.emit(ev.ERROR, entry_id, message=f"could not mark {instant.isoformat()} sent: {exc}")

    def _report_lost_instants(self) -> None:
        """On taking the lead: an instant the previous leader claimed but never published
        (killed between claim and send, where they are two steps) is lost: say so once."""
        for entry in self.entries.values():
            last = entry.state.last_run_time
            if last is not None and self.store.unsent_claim(entry.id, last):
                self.emit(
                    ev.MISSED, entry.id, instants=[last], count=1, reason="the previous leader stopped before sending"
                )
                self.store.mark_sent(entry.id, last)

    def _refresh(self, entry_id: str, advance_past: datetime | None = None, state: EntryState | None = None) -> None:
        fresh = self.store.get(entry_id)
        if fresh is None:
            self.entries.pop(entry_id, None)
            return
        if advance_past is not None and state is not None and fresh.state.next_run_time == advance_past:
            # Claimed already, yet the state still points at it (an API write reset it):
            # move it on so this instant is not tried again.
            self.store.set_state(entry_id, state)
            fresh.state = state
        self.entries[entry_id] = fresh

    def _write_heartbeat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.beat("leader" if self.is_leader else "follower", self.owner)

    # -- the loop the run modes share ---------------------------------------------------------
    def wake(self) -> None:
        """Recompute now (a local API change); other processes learn through the store."""
        self._revision = None
        self._interrupt.set()

    def stop(self) -> None:
        self._stopping = True
        self._interrupt.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wait(self, seconds: float) -> None:
        """Sleep until the next due time, a store change, a wake() or stop(). The store's
        wait (pub/sub, data_version checks) covers all but the last few milliseconds, which
        a plain timed wait covers precisely."""
        deadline = time.monotonic() + seconds
        failed = False
        if seconds > PRECISE_TAIL and not self._interrupt.is_set():
            try:
                if self.store.wait_for_change(seconds - PRECISE_TAIL, self._interrupt, self._revision):
                    self._maybe_changed = True
            except (StoreError, TaskQError, OSError) as exc:
                # The store is unreachable: sleep on without change notices (tick retries the
                # store) and reload afterwards, in case a change went unnoticed.
                self.emit(ev.ERROR, message=f"waiting for schedule changes: {type(exc).__name__}: {exc}")
                failed = True
        if failed or not self._maybe_changed:
            self._interrupt.wait(max(0.0, deadline - time.monotonic()))
        if failed:
            self._maybe_changed = True
        if self._interrupt.is_set() and not self._stopping:
            self._interrupt.clear()
            self._maybe_changed = True

    def run(self) -> None:
        """Blocking loop: tick, sleep, until stop()."""
        self.emit(ev.STARTED, owner=self.owner, store=redact(self.store.url))
        try:
            while not self._stopping:
                self.wait(self.tick())
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        if self.is_leader:
            try:
                self.store.release_lock(self.owner)
            except (StoreError, TaskQError, OSError):
                pass  # it expires on its own within the TTL
            self.is_leader = False
        self.emit(ev.STOPPED, owner=self.owner)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
