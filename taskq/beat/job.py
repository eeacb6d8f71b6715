"""APScheduler's Job: a view of one stored entry with its own modify/reschedule/pause/
resume/remove, and the callable references persistent job stores keep."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from datetime import datetime, timezone, tzinfo
from typing import Any, Protocol

from taskq.beat.core.entry import Entry
from taskq.errors import ConfigurationError

UTC = timezone.utc  # APScheduler's name in this module
LOCAL_PREFIX = "local:"  # a callable held in this process only (memory job store)


class TransientJobError(ValueError):
    """APScheduler's error for a job without a callable reference in a persistent job store
    (``taskq.beat.jobstores.base`` hands it on, where APScheduler defines it)."""


class JobSerializationError(ConfigurationError, TransientJobError):
    """A job whose callable has no import reference cannot go into a persistent job store."""


def callable_reference(func: Callable[..., Any]) -> str | None:
    """ "module:qualified.name" if importing it gives back ``func``, else None."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or "<" in qualname:  # <lambda>, <locals>
        return None
    try:
        found = resolve_reference(f"{module}:{qualname}")
    except (ConfigurationError, ImportError):
        return None
    if found is func or getattr(found, "__func__", None) is getattr(func, "__func__", func):
        return f"{module}:{qualname}"
    return None


def resolve_reference(reference: str) -> Callable[..., Any]:
    module_name, _, path = reference.partition(":")
    if not module_name or not path:
        raise ConfigurationError(f"{reference!r} is not a 'module:function' reference")
    target: Any = importlib.import_module(module_name)
    for part in path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(f"{reference!r}: {part!r} not found") from None
    if not callable(target):
        raise ConfigurationError(f"{reference!r} is not callable")
    return target  # type: ignore[no-any-return]


def callable_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "name", None)  # an @app.task
    if isinstance(name, str) and hasattr(func, "apply_async"):
        return name
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func))


def check_arguments(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Fail at add_job, as APScheduler does, when the arguments cannot bind."""
    target = getattr(func, "fn", func)  # an @app.task's function
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"the job's arguments do not match {callable_name(func)}: {exc}") from None


class JobHost(Protocol):
    """What a Job needs of its scheduler (``BaseScheduler`` is one), declared here so that this
    module imports nothing of the scheduler."""

    timezone_info: tzinfo

    def _resolve(self, entry: Entry) -> Callable[..., Any]: ...

    def modify_job(self, job_id: str, jobstore: str | None = None, **changes: Any) -> Job: ...

    def reschedule_job(
        self, job_id: str, jobstore: str | None = None, trigger: Any = None, **trigger_args: Any
    ) -> Job: ...

    def pause_job(self, job_id: str, jobstore: str | None = None) -> Job: ...

    def resume_job(self, job_id: str, jobstore: str | None = None) -> Job | None: ...

    def remove_job(self, job_id: str, jobstore: str | None = None) -> None: ...


class Job:
    """One scheduled job (a stored entry seen through APScheduler's attributes)."""

    def __init__(self, scheduler: JobHost, entry: Entry, jobstore: str | None) -> None:
        self._scheduler = scheduler
        self._entry = entry
        self._jobstore_alias = jobstore

    @property
    def id(self) -> str:
        return self._entry.id

    @property
    def name(self) -> str:
        return self._entry.name or self._entry.task

    @property
    def func(self) -> Any:
        return self._scheduler._resolve(self._entry)

    @property
    def func_ref(self) -> str:
        return self._entry.task

    @property
    def args(self) -> tuple[Any, ...]:
        return self._entry.args

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._entry.kwargs

    @property
    def trigger(self) -> Any:
        return self._entry.schedule

    @property
    def executor(self) -> str:
        return self._entry.executor

    @property
    def misfire_grace_time(self) -> float | None:
        return self._entry.policy.misfire_grace_time

    @property
    def coalesce(self) -> bool:
        return self._entry.policy.coalesce

    @property
    def max_instances(self) -> int | None:
        return self._entry.policy.max_instances

    @property
    def next_run_time(self) -> datetime | None:
        moment = None if self._entry.paused else self._entry.state.next_run_time
        zone: tzinfo = self._scheduler.timezone_info
        return moment.astimezone(zone) if moment is not None else None

    @property
    def pending(self) -> bool:
        """True while the job waits for the scheduler to start (no job store yet)."""
        return self._jobstore_alias is None

    def modify(self, **changes: Any) -> Job:
        self._refresh(self._scheduler.modify_job(self.id, self._jobstore_alias, **changes))
        return self

    def reschedule(self, trigger: Any, **trigger_args: Any) -> Job:
        self._refresh(self._scheduler.reschedule_job(self.id, self._jobstore_alias, trigger, **trigger_args))
        return self

    def pause(self) -> Job:
        self._refresh(self._scheduler.pause_job(self.id, self._jobstore_alias))
        return self

    def resume(self) -> Job:
        self._refresh(self._scheduler.resume_job(self.id, self._jobstore_alias))
        return self

    def remove(self) -> None:
        self._scheduler.remove_job(self.id, self._jobstore_alias)

    def _refresh(self, job: Job | None) -> None:
        if job is not None:
            self._entry, self._jobstore_alias = job._entry, job._jobstore_alias

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __str__(self) -> str:
        status = f"next run at: {self.next_run_time}" if self.next_run_time else "paused"
        return f"{self.name} (trigger: {self.trigger}, {status})"

    def __repr__(self) -> str:
        return f"<Job (id={self.id} name={self.name})>"
