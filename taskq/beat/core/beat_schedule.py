"""Entries from the app's configuration: ``app.conf.beat_schedule`` (Celery's format) and
``@app.periodic(schedule)``. These get Celery beat's defaults (DESIGN.md section 7).

Like Celery beat, beat adds ``celery.backend_cleanup`` at 4:00 daily when the result backend
keeps expired results until they are deleted (db+ and sqlite); a beat_schedule entry of that
name replaces it."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from taskq.beat.core.entry import CELERY_DEFAULTS, Entry, EntryState, Policy
from taskq.beat.core.schedules import EPOCH, as_schedule, crontab, every
from taskq.builtins import BACKEND_CLEANUP, CLEANED_SCHEMES
from taskq.config import Settings, url_scheme
from taskq.errors import ConfigurationError

if TYPE_CHECKING:
    from taskq.beat.core.stores.base import ScheduleStore

F = TypeVar("F", bound=Callable[..., Any])
POLICY_KEYS = ("misfire_grace_time", "coalesce", "max_instances", "jitter")
ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative", *POLICY_KEYS})

# Entries declared with @app.periodic, per app (kept beside the app, not in app.conf, so that
# assigning app.conf.beat_schedule later does not drop them).
_PERIODIC: weakref.WeakKeyDictionary[Any, dict[str, dict[str, Any]]] = weakref.WeakKeyDictionary()


class ConfiguredApp(Protocol):
    """What the entries need of the app (``taskq.app.TaskQ`` is one, and imports this module
    for ``@app.periodic``: declared here, the app is no import of ours)."""

    @property
    def conf(self) -> Settings: ...

    def task(self, fn: Callable[..., Any], /) -> Any: ...

    def task_name(self, fn: Callable[..., Any]) -> str: ...


def periodic(app: ConfiguredApp, schedule: Any, *, name: str | None = None, **options: Any) -> Callable[[F], F]:
    """What ``@app.periodic(schedule, args=, kwargs=, options=, misfire_grace_time=, ...)`` does:
    register the function as a task (unless it is one) and add a beat entry for it."""
    as_schedule(schedule)  # a bad schedule fails here, at definition
    unknown = set(options) - (ENTRY_KEYS - {"task", "schedule", "relative"})
    if unknown:
        raise ConfigurationError(f"@app.periodic: unknown option(s) {', '.join(sorted(unknown))}")

    def register(fn: F) -> F:
        task = fn if hasattr(fn, "name") and hasattr(fn, "apply_async") else app.task(fn)
        task_name = str(getattr(task, "name", None) or app.task_name(fn))
        _PERIODIC.setdefault(app, {})[name or task_name] = {"task": task_name, "schedule": schedule, **options}
        return task  # type: ignore[return-value]

    return register


def entry_from_spec(entry_id: str, spec: Mapping[str, Any], timezone: str, has_backend: bool) -> Entry:
    """One beat_schedule item (Celery's keys plus our policy keys) as an Entry."""
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"beat_schedule[{entry_id!r}] must be a dict, not {type(spec).__name__}")
    unknown = set(spec) - ENTRY_KEYS
    if unknown:
        raise ConfigurationError(f"beat_schedule[{entry_id!r}]: unknown key(s) {', '.join(sorted(unknown))}")
    if "task" not in spec or "schedule" not in spec:
        raise ConfigurationError(f"beat_schedule[{entry_id!r}] needs 'task' and 'schedule'")
    policy_values = {k: spec[k] for k in POLICY_KEYS if k in spec}
    policy = Policy(**{**_policy_dict(CELERY_DEFAULTS), **policy_values})
    if policy.max_instances is not None and not has_backend:
        raise ConfigurationError(
            f"beat_schedule[{entry_id!r}]: max_instances needs a result backend to know which runs are unfinished"
        )
    try:
        schedule = as_schedule(spec["schedule"], default_tz=timezone)
        if spec.get("relative") and isinstance(schedule, every):  # Celery: rounded to the interval
            schedule = every(schedule.period, anchor=EPOCH)
    except ConfigurationError as exc:
        raise ConfigurationError(f"beat_schedule[{entry_id!r}]: {exc}") from None
    return Entry(
        id=entry_id,
        task=str(spec["task"]),
        schedule=schedule,
        args=tuple(spec.get("args") or ()),
        kwargs=dict(spec.get("kwargs") or {}),
        options=dict(spec.get("options") or {}),
        policy=policy,
        source="config",
    )


def entries_from_app(app: ConfiguredApp) -> list[Entry]:
    """All configured entries of the app: beat_schedule first, then @app.periodic ones."""
    conf = app.conf
    has_backend = conf.result_backend_url is not None
    specs: dict[str, Mapping[str, Any]] = {**builtin_specs(conf), **(conf.beat_schedule or {})}
    for entry_id, spec in _PERIODIC.get(app, {}).items():
        if entry_id in specs:
            raise ConfigurationError(f"beat entry {entry_id!r} is defined twice (beat_schedule and @app.periodic)")
        specs[entry_id] = spec
    return [entry_from_spec(entry_id, spec, conf.timezone, has_backend) for entry_id, spec in specs.items()]


def builtin_specs(conf: Settings) -> dict[str, Mapping[str, Any]]:
    """The entries beat adds by itself: Celery's ``celery.backend_cleanup`` (4:00 daily, a
    message that expires after 12 hours) for a backend that does not expire results itself."""
    url = conf.result_backend_url
    if url is None or url_scheme(url) not in CLEANED_SCHEMES or not conf.result_expires:
        return {}
    schedule = crontab(minute=0, hour=4)
    return {BACKEND_CLEANUP: {"task": BACKEND_CLEANUP, "schedule": schedule, "options": {"expires": 12 * 3600}}}


def _policy_dict(policy: Policy) -> dict[str, Any]:
    return {k: getattr(policy, k) for k in POLICY_KEYS}


def sync_config_entries(store: ScheduleStore, config_entries: Sequence[Entry], now: datetime) -> None:
    """Make the store hold beat_schedule / @app.periodic entries: new ones get their anchor
    and first run; changed ones their new definition; ones gone from the config go."""
    stored = {e.id: e for e in store.entries()}
    wanted = {e.id for e in config_entries}
    for entry in config_entries:
        current = stored.get(entry.id)
        if current is None:
            fresh = entry.copy(start_date=now, state=EntryState())
            fresh.state.next_run_time = fresh.first_run_time(now)
            store.add(fresh)  # False if another beat added it first: its anchor stands
            continue
        candidate = entry.copy(start_date=current.start_date, paused=current.paused, state=current.state)
        if current.same_definition(candidate):
            continue
        if current.schedule != entry.schedule:
            candidate = candidate.copy(start_date=now)
            store.set_definition(candidate)
            store.set_state(entry.id, EntryState(next_run_time=candidate.first_run_time(now)))
        else:
            store.set_definition(candidate)
    for entry_id, current in stored.items():
        if current.source == "config" and entry_id not in wanted:
            store.remove(entry_id)
