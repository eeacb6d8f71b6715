"""Runtime changes with APScheduler's method names: add_job, modify_job, reschedule_job,
pause_job, resume_job, remove_job, get_job, get_jobs. Every write goes to the schedule
store, which tells running beats (pub/sub on Redis, data_version on sqlite); a scheduler in
this process is also woken directly through ``on_change``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

from taskq.beat.core.entry import APSCHEDULER_DEFAULTS, Entry, EntryState, Policy
from taskq.beat.core.errors import ConflictingIdError, JobLookupError
from taskq.beat.core.schedules import as_schedule
from taskq.beat.core.stores.base import ScheduleStore
from taskq.errors import ConfigurationError


class _Unset:
    def __repr__(self) -> str:
        return "undefined"


UNSET: Any = _Unset()
POLICY_FIELDS = tuple(f.name for f in dataclass_fields(Policy))
MODIFIABLE = frozenset({"task", "args", "kwargs", "name", "options", "next_run_time", *POLICY_FIELDS})


class ScheduleAPI:
    def __init__(
        self,
        store: ScheduleStore,
        clock: Callable[[], datetime],
        *,
        timezone: str = "UTC",
        has_backend: bool = False,
        job_defaults: Policy = APSCHEDULER_DEFAULTS,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timezone = timezone
        self.has_backend = has_backend
        self.job_defaults = job_defaults
        self.on_change = on_change or (lambda: None)

    def _policy(self, base: Policy, explicit: dict[str, Any]) -> Policy:
        values = {name: getattr(base, name) for name in POLICY_FIELDS}
        if not self.has_backend and "max_instances" not in explicit:
            # max_instances counts unfinished runs through the result backend; without one
            # the default cannot apply (asking for it explicitly is an error below).
            values["max_instances"] = None
        values.update(explicit)
        policy = Policy(**values)
        if policy.max_instances is not None and not self.has_backend:
            raise ConfigurationError("max_instances needs a result backend to know which runs are unfinished")
        return policy

    def add_job(
        self,
        task: Any,
        schedule: Any,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        id: str | None = None,  # shadows a builtin: APScheduler's keyword
        name: str | None = None,
        misfire_grace_time: float | None = UNSET,
        coalesce: bool = UNSET,
        max_instances: int | None = UNSET,
        jitter: float | None = UNSET,
        next_run_time: datetime | None = UNSET,
        replace_existing: bool = False,
        options: dict[str, Any] | None = None,
    ) -> Entry:
        """Add an entry that enqueues ``task`` (a task name or an @app.task) on ``schedule``.
        ``next_run_time=None`` adds it paused, as in APScheduler."""
        explicit = {
            key: value
            for key, value in (
                ("misfire_grace_time", misfire_grace_time),
                ("coalesce", coalesce),
                ("max_instances", max_instances),
                ("jitter", jitter),
            )
            if value is not UNSET
        }
        now = self.clock()
        entry = Entry(
            id=id or uuid.uuid4().hex,
            task=_task_name(task),
            schedule=as_schedule(schedule, default_tz=self.timezone),
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}),
            policy=self._policy(self.job_defaults, explicit),
            start_date=now,
            paused=next_run_time is None,
            name=name,
        )
        first = entry.first_run_time(now) if next_run_time is UNSET or next_run_time is None else _aware(next_run_time)
        entry.state = EntryState(next_run_time=first)
        if not self.store.add(entry, replace=replace_existing):
            raise ConflictingIdError(entry.id)
        self.on_change()
        return entry

    def get_job(self, job_id: str) -> Entry | None:
        return self.store.get(job_id)

    def get_jobs(self) -> list[Entry]:
        return self.store.entries()

    def _existing(self, job_id: str) -> Entry:
        entry = self.store.get(job_id)
        if entry is None:
            raise JobLookupError(job_id)
        return entry

    def modify_job(self, job_id: str, **changes: Any) -> Entry:
        unknown = set(changes) - MODIFIABLE
        if unknown:
            raise ConfigurationError(f"modify_job: cannot change {', '.join(sorted(unknown))}")
        entry = self._existing(job_id)
        explicit = {k: changes.pop(k) for k in POLICY_FIELDS if k in changes}
        if explicit:
            entry = entry.copy(policy=self._policy(entry.policy, explicit))
        if "task" in changes:
            changes["task"] = _task_name(changes["task"])
        if "args" in changes:
            changes["args"] = tuple(changes["args"] or ())
        next_run_time = changes.pop("next_run_time", UNSET)
        entry = entry.copy(**changes)
        if not self.store.set_definition(entry):
            raise JobLookupError(job_id)
        if next_run_time is not UNSET:
            self._set_next(entry, _aware(next_run_time) if next_run_time is not None else None)
        self.on_change()
        return self._existing(job_id)

    def _set_next(self, entry: Entry, next_run_time: datetime | None) -> None:
        state = EntryState(next_run_time, entry.state.last_run_time, list(entry.state.pending))
        if not self.store.set_state(entry.id, state):
            raise JobLookupError(entry.id)

    def reschedule_job(self, job_id: str, schedule: Any) -> Entry:
        """A new schedule; every() counts from now; the next run is recomputed."""
        entry = self._existing(job_id)
        now = self.clock()
        entry = entry.copy(schedule=as_schedule(schedule, default_tz=self.timezone), start_date=now)
        if not self.store.set_definition(entry):
            raise JobLookupError(job_id)
        self._set_next(entry, entry.first_run_time(now))
        self.on_change()
        return self._existing(job_id)

    def pause_job(self, job_id: str) -> Entry:
        entry = self._existing(job_id).copy(paused=True)
        if not self.store.set_definition(entry):
            raise JobLookupError(job_id)
        self.on_change()
        return entry

    def resume_job(self, job_id: str) -> Entry:
        """Unpause; the next run is the schedule's next instant after now (runs missed while
        paused are not made up, as in APScheduler)."""
        entry = self._existing(job_id).copy(paused=False)
        if not self.store.set_definition(entry):
            raise JobLookupError(job_id)
        self._set_next(entry, entry.effective_schedule().next_fire(self.clock()))
        self.on_change()
        return self._existing(job_id)

    def remove_job(self, job_id: str) -> None:
        if not self.store.remove(job_id):
            raise JobLookupError(job_id)
        self.on_change()


def _aware(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ConfigurationError(f"next_run_time must be a timezone-aware datetime, not {moment!r}")
    return moment


def _task_name(task: Any) -> str:
    if isinstance(task, str):
        return task
    name = getattr(task, "name", None)
    if isinstance(name, str) and hasattr(task, "apply_async"):
        return name
    raise ConfigurationError(
        f"{task!r} is not a task: pass an @app.task or a task name (plain callables come with the scheduler API)"
    )


def schedule_api_for(app: Any) -> ScheduleAPI:
    """The API over ``app``'s schedule store (``taskq schedule`` and the dashboard use it)."""
    from taskq.beat.core.loop import utc_now
    from taskq.beat.core.stores import open_store

    conf = app.finalize()
    store = open_store(conf.beat_store, app.broker)
    return ScheduleAPI(store, utc_now, timezone=conf.timezone, has_backend=conf.result_backend_url is not None)
