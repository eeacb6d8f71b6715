"""The job half of APScheduler's API: add_job (trigger names or objects, **trigger_args),
scheduled_job, modify/reschedule/pause/resume/remove_job, remove_all_jobs, get_job(s),
print_jobs, export_jobs/import_jobs. Each write goes to a job store (the core reloads it);
jobs added before start() without a job store wait as *pending*, as in APScheduler.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone, tzinfo
from typing import IO, TYPE_CHECKING, Any

from taskq.beat import events as ev
from taskq.beat.core.entry import APSCHEDULER_DEFAULTS, Entry, EntryState, Policy
from taskq.beat.core.errors import ConflictingIdError, JobLookupError
from taskq.beat.core.schedules import Schedule, as_schedule
from taskq.beat.core.stores.base import ScheduleStore
from taskq.beat.job import LOCAL_PREFIX, Job, JobSerializationError, callable_name, callable_reference, check_arguments
from taskq.beat.triggers import TRIGGERS, BaseTrigger, DateTrigger
from taskq.errors import ConfigurationError

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.beat.core.loop import SchedulerCore
    from taskq.beat.executors.base import BaseExecutor


class _Undefined:
    def __repr__(self) -> str:
        return "undefined"


undefined: Any = _Undefined()
TASKQ_JOB_KEYWORDS = ("options",)  # taskq's own add_job extra: message options for the broker executor


class JobAdmin:
    app: TaskQ | None
    core: SchedulerCore
    timezone_info: tzinfo
    _job_defaults: dict[str, Any]
    _jobstores: dict[str, ScheduleStore]
    _executors: dict[str, BaseExecutor]

    def _init_jobs(self) -> None:
        self._pending: list[tuple[Entry, str, bool]] = []  # (entry, job store alias, replace_existing)
        self._local: dict[str, Callable[..., Any]] = {}  # callables the memory store holds by job id
        self._aliases: dict[str, str] = {}  # job id -> job store alias, for events after removal
        self._target_store = "default"
        self._jobs_lock = threading.RLock()

    def _dispatch(self, event: ev.SchedulerEvent) -> None:
        raise NotImplementedError

    def now(self) -> datetime:
        raise NotImplementedError

    def wakeup(self) -> None:
        raise NotImplementedError

    # -- adding ---------------------------------------------------------------------------------
    def add_job(
        self,
        func: Any,
        trigger: Any = None,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        id: str | None = None,
        name: str | None = None,
        misfire_grace_time: float | None = undefined,
        coalesce: bool = undefined,
        max_instances: int = undefined,
        next_run_time: datetime | None = undefined,
        jobstore: str = "default",
        executor: str = undefined,
        replace_existing: bool = False,
        **trigger_args: Any,
    ) -> Job:
        options = {key: trigger_args.pop(key) for key in TASKQ_JOB_KEYWORDS if key in trigger_args}
        schedule = self._create_trigger(trigger, trigger_args)
        if executor is undefined:
            # A task name can only be enqueued; anything callable runs in-process by default.
            executor = "broker" if isinstance(func, str) and ":" not in func else "default"
        job_id = id or uuid.uuid4().hex
        entry = Entry(
            id=job_id,
            task=self._task_reference(func, job_id, jobstore, executor),
            schedule=schedule,
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            options=dict(options.get("options") or {}),
            policy=self._policy(executor, misfire_grace_time, coalesce, max_instances, schedule),
            start_date=self.now(),
            name=name or (callable_name(func) if not isinstance(func, str) else func),
            executor=executor,
        )
        if callable(func) and not isinstance(func, str):
            check_arguments(func, entry.args, entry.kwargs)
        first = self._first_run(schedule) if next_run_time is undefined else _aware(next_run_time, self.timezone_info)
        entry.paused = first is None and next_run_time is None
        entry.state = EntryState(next_run_time=first)
        with self._jobs_lock:
            if jobstore not in self._jobstores:
                if self.running:  # type: ignore[attr-defined]
                    raise KeyError(f"no job store by the alias of {jobstore!r}")
                if any(p[0].id == job_id for p in self._pending) and not replace_existing:
                    raise ConflictingIdError(job_id)
                self._pending = [p for p in self._pending if p[0].id != job_id] + [(entry, jobstore, replace_existing)]
                return Job(self, entry, None)  # type: ignore[arg-type]
            self._store_new(entry, jobstore, replace_existing)
        return Job(self, entry, jobstore)  # type: ignore[arg-type]

    def scheduled_job(self, trigger: Any = None, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        """Decorator form of add_job; the function itself is returned unchanged."""

        def register(func: Any) -> Any:
            self.add_job(func, trigger, *args, **kwargs)
            return func

        return register

    def _store_new(self, entry: Entry, alias: str, replace: bool) -> None:
        self._target_store = alias
        try:
            if not self.core.store.add(entry, replace=replace):
                raise ConflictingIdError(entry.id)
        finally:
            self._target_store = "default"
        self._aliases[entry.id] = alias
        self._dispatch(ev.JobEvent(ev.EVENT_JOB_ADDED, entry.id, alias))
        self.wakeup()

    def _flush_pending(self) -> None:
        with self._jobs_lock:
            pending, self._pending = self._pending, []
            for entry, alias, replace in pending:
                self._store_new(entry, alias, replace)

    def _create_trigger(self, trigger: Any, trigger_args: dict[str, Any]) -> Schedule:
        if trigger is None:
            trigger = "date"
        if isinstance(trigger, str) and trigger in TRIGGERS:
            trigger_args.setdefault("timezone", self.timezone_info)
            if trigger == "date" and "run_date" not in trigger_args:
                trigger_args["run_date"] = self.now()
            if trigger in ("and", "or"):
                trigger_args.pop("timezone")
            try:
                made: Schedule = TRIGGERS[trigger](**trigger_args)  # type: ignore[arg-type]
            except TypeError as exc:
                raise ConfigurationError(f"trigger {trigger!r}: {exc}") from None
            return made
        if trigger_args:
            raise ConfigurationError(f"unexpected add_job keyword(s): {', '.join(sorted(trigger_args))}")
        if isinstance(trigger, BaseTrigger):
            return trigger.with_default_tz(self.timezone_info)
        return as_schedule(trigger, default_tz=self.timezone_info)  # taskq's every()/crontab()/cron()/at()

    def _first_run(self, schedule: Schedule) -> datetime | None:
        if isinstance(schedule, BaseTrigger):
            return schedule.get_next_fire_time(None, self.now())
        return schedule.next_fire(self.now())

    def _policy(self, executor: str, grace: Any, coalesce: Any, max_instances: Any, schedule: Schedule) -> Policy:
        values: dict[str, Any] = {
            "misfire_grace_time": APSCHEDULER_DEFAULTS.misfire_grace_time,
            "coalesce": APSCHEDULER_DEFAULTS.coalesce,
            "max_instances": APSCHEDULER_DEFAULTS.max_instances,
            **self._job_defaults,
        }
        explicit = {
            k: v
            for k, v in (("misfire_grace_time", grace), ("coalesce", coalesce), ("max_instances", max_instances))
            if v is not undefined
        }
        if executor == "broker" and (self.app is None or self.app.backend is None):
            # Unfinished broker runs are known only through a result backend (DESIGN.md section 7).
            if explicit.get("max_instances") is not None:
                raise ConfigurationError("max_instances on the broker executor needs a result backend")
            values["max_instances"] = None
        values.update(explicit)
        values["jitter"] = getattr(schedule, "jitter", None)
        return Policy(**values)

    def _task_reference(self, func: Any, job_id: str, jobstore: str, executor: str) -> str:
        to_broker = executor == "broker"
        if isinstance(func, str):
            return func
        task_name = getattr(func, "name", None)
        if isinstance(task_name, str) and hasattr(func, "apply_async"):
            return task_name  # an @app.task: workers know it by name; in-process runs call it here
        if to_broker:
            raise ConfigurationError(
                f"{callable_name(func)} is a plain callable: the broker executor sends @app.task functions to"
                " workers (decorate it with @app.task, or run it in-process with another executor)"
            )
        if not callable(func):
            raise ConfigurationError(f"{func!r} is neither callable nor a 'module:function' reference")
        reference = callable_reference(func)
        if reference is not None:
            return reference
        store = self._jobstores.get(jobstore)
        if store is not None and getattr(store, "persistent", True):
            raise JobSerializationError(
                f"This job cannot be serialized since the reference to its callable ({func!r}) could not be"
                " determined. Consider giving a textual reference (module:function name) instead."
            )
        self._local[job_id] = func
        return LOCAL_PREFIX + job_id

    def _local_callable(self, entry: Entry) -> Callable[..., Any] | None:
        if entry.task.startswith(LOCAL_PREFIX):
            found = self._local.get(entry.task[len(LOCAL_PREFIX) :])
            if found is None:
                raise ConfigurationError(f"job {entry.id!r}: its callable lives in another process")
            return found
        return None

    # -- finding --------------------------------------------------------------------------------------------
    def _alias_for(self, job_id: str) -> str | None:
        alias = self.core.store.alias_of(job_id)  # type: ignore[attr-defined]
        return alias if alias is not None else self._aliases.get(job_id)

    def _forget(self, job_id: str) -> None:
        self._local.pop(job_id, None)

    def _find(self, job_id: str, jobstore: str | None) -> tuple[Entry, str | None]:
        with self._jobs_lock:
            for entry, alias, _ in self._pending:
                if entry.id == job_id and jobstore in (None, alias):
                    return entry, None
        stores = {jobstore: self._jobstores[jobstore]} if jobstore in self._jobstores else self._jobstores
        for alias, store in list(stores.items()):
            found = store.get(job_id)
            if found is not None and (jobstore is None or alias == jobstore):
                return found, alias
        raise JobLookupError(job_id)

    def get_job(self, job_id: str, jobstore: str | None = None) -> Job | None:
        try:
            entry, alias = self._find(job_id, jobstore)
        except JobLookupError:
            return None
        return Job(self, entry, alias)  # type: ignore[arg-type]

    def get_jobs(self, jobstore: str | None = None, pending: bool | None = None) -> list[Job]:
        """Jobs by next run time (paused ones last); pending ones first, as APScheduler lists them."""
        with self._jobs_lock:
            jobs = [Job(self, e, None) for e, alias, _ in self._pending if jobstore in (None, alias)]  # type: ignore[arg-type]
        stored: list[Job] = []
        for alias, store in list(self._jobstores.items()):
            if jobstore in (None, alias):
                stored += [Job(self, entry, alias) for entry in store.entries()]  # type: ignore[arg-type]
        far = datetime.max.replace(tzinfo=timezone.utc)
        stored.sort(key=lambda job: job.next_run_time or far)
        return jobs + stored

    def print_jobs(self, jobstore: str | None = None, out: IO[str] | None = None) -> None:
        out = out or sys.stdout
        with self._jobs_lock:
            pending = [Job(self, e, None) for e, alias, _ in self._pending if jobstore in (None, alias)]  # type: ignore[arg-type]
        if pending or not self._jobstores:
            print("Pending jobs:", file=out)
            for job in pending:
                print(f"    {job}", file=out)
            if not pending:
                print("    No pending jobs", file=out)
        for alias in list(self._jobstores):
            if jobstore in (None, alias):
                print(f"Jobstore {alias}:", file=out)
                jobs = self.get_jobs(alias)
                for job in jobs:
                    print(f"    {job}", file=out)
                if not jobs:
                    print("    No scheduled jobs", file=out)

    # -- changing -----------------------------------------------------------------------------------------------
    def _write(self, entry: Entry, alias: str | None, next_run: datetime | _Undefined | None = undefined) -> Job:
        if alias is None:  # pending: change it in the list
            with self._jobs_lock:
                if not isinstance(next_run, _Undefined):
                    entry.state = EntryState(next_run_time=next_run)
                self._pending = [(entry if p[0].id == entry.id else p[0], p[1], p[2]) for p in self._pending]
            return Job(self, entry, None)  # type: ignore[arg-type]
        store = self._jobstores[alias]
        if not store.set_definition(entry):
            raise JobLookupError(entry.id)
        if not isinstance(next_run, _Undefined):
            current = store.get(entry.id)
            pending = list(current.state.pending) if current is not None else []
            last = current.state.last_run_time if current is not None else None
            store.set_state(entry.id, EntryState(next_run, last, pending))
        self._dispatch(ev.JobEvent(ev.EVENT_JOB_MODIFIED, entry.id, alias))
        self.wakeup()
        fresh = store.get(entry.id)
        return Job(self, fresh or entry, alias)  # type: ignore[arg-type]

    def modify_job(self, job_id: str, jobstore: str | None = None, **changes: Any) -> Job:
        entry, alias = self._find(job_id, jobstore)
        if "id" in changes:
            raise ValueError("The job ID may not be changed")
        policy: dict[str, Any] = {
            k: changes.pop(k) for k in ("misfire_grace_time", "coalesce", "max_instances") if k in changes
        }
        if policy:
            merged: dict[str, Any] = {**entry.policy.__dict__, **policy}
            entry = entry.copy(policy=Policy(**merged))
        if "func" in changes:
            func = changes.pop("func")
            entry = entry.copy(task=self._task_reference(func, job_id, alias or "default", entry.executor))
        if "trigger" in changes:
            entry = entry.copy(schedule=self._create_trigger(changes.pop("trigger"), {}))
        for key in ("args", "kwargs", "name", "executor"):
            if key in changes:
                value = changes.pop(key)
                entry = entry.copy(**{key: tuple(value or ()) if key == "args" else value})
        next_run: Any = undefined
        if "next_run_time" in changes:
            next_run = changes.pop("next_run_time")
            next_run = _aware(next_run, self.timezone_info) if next_run is not None else None
            entry = entry.copy(paused=next_run is None)
        if changes:
            raise AttributeError(f"The following are not modifiable attributes of Job: {', '.join(changes)}")
        return self._write(entry, alias, next_run)

    def reschedule_job(self, job_id: str, jobstore: str | None = None, trigger: Any = None, **trigger_args: Any) -> Job:
        entry, alias = self._find(job_id, jobstore)
        schedule = self._create_trigger(trigger, trigger_args)
        entry = entry.copy(schedule=schedule, start_date=self.now(), paused=False)
        entry = entry.copy(policy=Policy(**{**entry.policy.__dict__, "jitter": getattr(schedule, "jitter", None)}))
        return self._write(entry, alias, self._first_run(schedule))

    def pause_job(self, job_id: str, jobstore: str | None = None) -> Job:
        entry, alias = self._find(job_id, jobstore)
        return self._write(entry.copy(paused=True), alias)

    def resume_job(self, job_id: str, jobstore: str | None = None) -> Job | None:
        """Unpause: the next run is the trigger's next time from now; a trigger with no more
        times removes the job, as in APScheduler."""
        entry, alias = self._find(job_id, jobstore)
        schedule = entry.effective_schedule()
        upcoming = schedule.next_fire(self.now()) if not isinstance(schedule, DateTrigger) else schedule.run_date
        if upcoming is None:
            self.remove_job(job_id, alias)
            return None
        return self._write(entry.copy(paused=False), alias, upcoming)

    def remove_job(self, job_id: str, jobstore: str | None = None) -> None:
        _, alias = self._find(job_id, jobstore)
        if alias is None:
            with self._jobs_lock:
                self._pending = [p for p in self._pending if p[0].id != job_id]
        elif not self._jobstores[alias].remove(job_id):
            raise JobLookupError(job_id)
        self._forget(job_id)
        self._dispatch(ev.JobEvent(ev.EVENT_JOB_REMOVED, job_id, alias))
        self.wakeup()

    def remove_all_jobs(self, jobstore: str | None = None) -> None:
        """Remove every job added through the API (beat_schedule entries belong to the
        configuration and come back from it)."""
        with self._jobs_lock:
            self._pending = [p for p in self._pending if jobstore not in (None, p[1])]
        for alias, store in list(self._jobstores.items()):
            if jobstore in (None, alias):
                for entry in store.entries():
                    if entry.source == "api" and store.remove(entry.id):
                        self._forget(entry.id)
        self._dispatch(ev.SchedulerEvent(ev.EVENT_ALL_JOBS_REMOVED, jobstore))
        self.wakeup()

    # -- export / import ----------------------------------------------------------------------------------------
    def export_jobs(self, outfile: str | IO[str], jobstore: str | None = None) -> None:
        """Write the jobs (not their run state) as JSON; plain callables by reference."""
        jobs = []
        for job in self.get_jobs(jobstore):
            if job._entry.task.startswith(LOCAL_PREFIX):
                raise JobSerializationError(f"job {job.id!r}: its callable has no import reference to export")
            jobs.append({**job._entry.definition_dict(), "next_run_time": _iso(job.next_run_time)})
        document = json.dumps({"version": 1, "jobs": jobs}, indent=2, default=str)
        if isinstance(outfile, str):
            with open(outfile, "w", encoding="utf-8") as handle:
                handle.write(document)
        else:
            outfile.write(document)

    def import_jobs(self, infile: str | IO[str], jobstore: str = "default") -> None:
        if isinstance(infile, str):
            with open(infile, encoding="utf-8") as handle:
                document = json.load(handle)
        else:
            document = json.load(infile)
        for data in document.get("jobs", []):
            next_run = data.pop("next_run_time", None)
            entry = Entry.from_dicts(data, {"next_run_time": _from_iso(next_run)})
            with self._jobs_lock:
                if jobstore in self._jobstores:
                    self._store_new(entry, jobstore, False)
                else:
                    self._pending.append((entry, jobstore, False))


def _aware(moment: Any, zone: tzinfo) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):
        raise ConfigurationError(f"next_run_time must be a datetime, not {moment!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _from_iso(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None
