"""Entries: what to enqueue (task, args, kwargs, options), when (a schedule), and the misfire
policy; plus the persisted state beat keeps per entry (next and last run, unfinished runs).

An entry's definition and its state are stored apart: an API change rewrites the definition,
the leader advances the state, and neither clobbers the other.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from taskq.beat.core.schedules import Schedule, every, schedule_from_dict
from taskq.errors import ConfigurationError

ENTRY_OPTIONS = frozenset({"queue", "priority", "expires", "headers"})
DEFAULT_EXECUTOR = "broker"  # enqueue on the app's broker
INSTANT_NAMESPACE = uuid.UUID("6f0c86c2-5a0e-4d8e-9a52-7d1c2b0b8a11")


@dataclass(frozen=True)
class Policy:
    """Misfire policy. None means no limit. Defaults are Celery beat's (DESIGN.md section 7):
    a missed run runs once, late (coalesce, no grace limit, no instance limit)."""

    misfire_grace_time: float | None = None
    coalesce: bool = True
    max_instances: int | None = None
    jitter: float | None = None

    def __post_init__(self) -> None:
        if self.misfire_grace_time is not None and self.misfire_grace_time <= 0:
            raise ConfigurationError(f"misfire_grace_time must be positive or None, not {self.misfire_grace_time!r}")
        if self.max_instances is not None and self.max_instances < 1:
            raise ConfigurationError(f"max_instances must be at least 1 or None, not {self.max_instances!r}")
        if self.jitter is not None and self.jitter < 0:
            raise ConfigurationError(f"jitter must be non-negative or None, not {self.jitter!r}")


CELERY_DEFAULTS = Policy()
APSCHEDULER_DEFAULTS = Policy(misfire_grace_time=1.0, coalesce=True, max_instances=1)


@dataclass
class EntryState:
    """What beat persists per entry between runs and across restarts."""

    next_run_time: datetime | None = None  # the un-jittered next instant; None: no more runs
    last_run_time: datetime | None = None  # the last instant claimed (submitted or skipped)
    pending: list[tuple[str, float | None]] = field(default_factory=list)  # (task id, forget-after) unfinished

    def __post_init__(self) -> None:
        self.next_run_time = as_utc(self.next_run_time)
        self.last_run_time = as_utc(self.last_run_time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "next_run_time": _ts(self.next_run_time),
            "last_run_time": _ts(self.last_run_time),
            "pending": [list(p) for p in self.pending],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EntryState:
        return cls(
            next_run_time=_from_ts(data.get("next_run_time")),
            last_run_time=_from_ts(data.get("last_run_time")),
            pending=[(str(p[0]), p[1]) for p in data.get("pending") or []],
        )


@dataclass
class Entry:
    id: str
    task: str
    schedule: Schedule
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    policy: Policy = CELERY_DEFAULTS
    start_date: datetime | None = None  # anchor of every(); set when first stored
    paused: bool = False
    source: str = "api"  # "config" for beat_schedule / @app.periodic entries, which beat syncs
    name: str | None = None
    executor: str = DEFAULT_EXECUTOR  # the alias of the executor that starts its runs
    state: EntryState = field(default_factory=EntryState)

    def __post_init__(self) -> None:
        unknown = set(self.options) - ENTRY_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"entry {self.id!r}: unknown option(s) {', '.join(sorted(unknown))} "
                f"(allowed: {', '.join(sorted(ENTRY_OPTIONS))})"
            )
        priority = self.options.get("priority")
        if priority is not None and (not isinstance(priority, int) or not 0 <= priority <= 9):
            raise ConfigurationError(f"entry {self.id!r}: priority must be an integer 0-9, not {priority!r}")
        if not self.task:
            raise ConfigurationError(f"entry {self.id!r}: no task name")

    @property
    def next_run_time(self) -> datetime | None:
        return self.state.next_run_time

    def effective_schedule(self) -> Schedule:
        """The schedule with the entry's persisted anchor applied (every() counts from start_date)."""
        if isinstance(self.schedule, every) and self.schedule.anchor is None and self.start_date is not None:
            return self.schedule.anchored(self.start_date)
        return self.schedule

    def first_run_time(self, now: datetime) -> datetime | None:
        return as_utc(self.effective_schedule().next_fire(self.start_date or now))

    def jitter_offset(self, instant: datetime) -> float:
        """A delay in [0, jitter) derived from (id, instant): every beat process agrees on it."""
        if not self.policy.jitter:
            return 0.0
        digest = hashlib.sha256(f"{self.id}|{instant.timestamp()!r}".encode()).digest()
        return self.policy.jitter * int.from_bytes(digest[:8], "big") / 2**64

    def due_time(self) -> datetime | None:
        """When the next run is to be enqueued: the instant plus its jitter."""
        instant = self.state.next_run_time
        if instant is None or self.paused:
            return None
        return instant + timedelta(seconds=self.jitter_offset(instant))

    def task_id(self, instant: datetime) -> str:
        """One task id per (entry, instant), the same on every beat: a duplicate is recognisable."""
        return str(uuid.uuid5(INSTANT_NAMESPACE, f"{self.id}|{instant.astimezone(timezone.utc).isoformat()}"))

    def same_definition(self, other: Entry) -> bool:
        return self.definition_dict() == other.definition_dict()

    def definition_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "schedule": self.schedule.to_dict(),
            "args": list(self.args),
            "kwargs": self.kwargs,
            "options": self.options,
            "policy": {
                "misfire_grace_time": self.policy.misfire_grace_time,
                "coalesce": self.policy.coalesce,
                "max_instances": self.policy.max_instances,
                "jitter": self.policy.jitter,
            },
            "start_date": _ts(self.start_date),
            "paused": self.paused,
            "source": self.source,
            "name": self.name,
            "executor": self.executor,
        }

    @classmethod
    def from_dicts(cls, definition: dict[str, Any], state: dict[str, Any] | None) -> Entry:
        return cls(
            id=definition["id"],
            task=definition["task"],
            schedule=schedule_from_dict(definition["schedule"]),
            args=tuple(definition.get("args") or ()),
            kwargs=dict(definition.get("kwargs") or {}),
            options=dict(definition.get("options") or {}),
            policy=Policy(**definition.get("policy", {})),
            start_date=_from_ts(definition.get("start_date")),
            paused=bool(definition.get("paused")),
            source=str(definition.get("source", "api")),
            name=definition.get("name"),
            executor=str(definition.get("executor", DEFAULT_EXECUTOR)),
            state=EntryState.from_dict(state or {}),
        )

    def copy(self, **changes: Any) -> Entry:
        return replace(self, **changes)


def as_utc(moment: datetime | None) -> datetime | None:
    """Instants are kept in UTC: Python adds timedeltas to, and compares, two datetimes of
    one zone by wall clock with fold ignored, which is wrong across a fall-back."""
    return moment.astimezone(timezone.utc) if moment is not None else None


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _from_ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value is not None else None
