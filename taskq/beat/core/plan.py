"""The pure part of the scheduling core: given an entry (with its persisted state) and
``now``, which instants run, which are missed, and what the next instant is.

No clock, no I/O: tests drive it with explicit datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskq.beat.core.entry import Entry, as_utc

# Catching up after a long outage: beyond this many due instants of one entry we stop
# listing them one by one (they are still counted as missed or coalesced).
MAX_LISTED = 1000


@dataclass
class Plan:
    run: list[datetime] = field(default_factory=list)  # instants to submit now, oldest first
    missed: list[datetime] = field(default_factory=list)  # past misfire_grace_time
    coalesced: list[datetime] = field(default_factory=list)  # folded into a later run (coalesce)
    missed_count: int = 0
    coalesced_count: int = 0
    next_run_time: datetime | None = None  # the first instant after now
    last_due: datetime | None = None  # the latest instant that was due, whatever became of it


def lateness(entry: Entry, instant: datetime, now: datetime) -> float:
    """Seconds between when the instant was due (jitter included) and now."""
    due = instant + timedelta(seconds=entry.jitter_offset(instant))
    return (now - due).total_seconds()


def plan(entry: Entry, now: datetime) -> Plan | None:
    """The plan for an entry whose due time has come, else None."""
    due = entry.due_time()
    if due is None or due > now:
        return None
    schedule = entry.effective_schedule()
    grace = entry.policy.misfire_grace_time
    result = Plan()
    runnable: list[datetime] = []
    instant: datetime | None = entry.state.next_run_time
    while instant is not None and instant + timedelta(seconds=entry.jitter_offset(instant)) <= now:
        if grace is not None and lateness(entry, instant, now) > grace:
            result.missed_count += 1
            if len(result.missed) < MAX_LISTED:
                result.missed.append(instant)
        else:
            runnable.append(instant)
        result.last_due = instant
        instant = as_utc(schedule.next_fire(instant))
    result.next_run_time = instant
    if entry.policy.coalesce and len(runnable) > 1:
        result.coalesced_count = len(runnable) - 1
        result.coalesced = runnable[:-1][:MAX_LISTED]
        runnable = runnable[-1:]
    result.run = runnable
    return result


def next_wakeup(entries: list[Entry]) -> datetime | None:
    """The earliest due time among active entries."""
    times = [t for t in (e.due_time() for e in entries) if t is not None]
    return min(times) if times else None
