"""BaseScheduler: APScheduler 3's scheduler API on the one scheduling core (``SchedulerCore``):
jobs, executors and job stores by alias, listeners with event masks, start/shutdown/pause/
resume. The flavours (``taskq.beat.schedulers.blocking`` and its siblings) add only where the
loop runs.

Nothing here schedules: the core decides what is due and claims it; this layer turns API
calls into store writes (the core reloads them) and hands each claimed run to the job's
executor. Events: API calls fire theirs directly (JOB_ADDED, ...); what the loop does comes
through the core's one hook and is translated (a run missed past misfire_grace_time is
reported SUBMITTED then MISSED, as APScheduler's executor-side misfire check reports it).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from taskq import signals
from taskq.beat import events as ev
from taskq.beat.core import hook
from taskq.beat.core.beat_schedule import entries_from_app
from taskq.beat.core.entry import Entry
from taskq.beat.core.loop import DEFAULT_LOCK_TTL, Clock, SchedulerCore, utc_now
from taskq.beat.core.schedules import get_zone
from taskq.beat.core.stores import ScheduleStore, open_store
from taskq.beat.executors.base import BaseExecutor, Outcome, Run
from taskq.beat.job import resolve_reference
from taskq.beat.jobstores.memory import MemoryJobStore
from taskq.beat.jobstores.router import JobStoreRouter
from taskq.beat.schedulers import SchedulerAlreadyRunningError, SchedulerNotRunningError
from taskq.beat.schedulers.jobadmin import JobAdmin
from taskq.beat.schedulers.options import build_plugin, job_defaults, merge_config
from taskq.brokers.base import Publication
from taskq.display import redact
from taskq.errors import ConfigurationError, TaskQError

if TYPE_CHECKING:
    from taskq.app import TaskQ

log = logging.getLogger("taskq.beat")
STATE_STOPPED, STATE_RUNNING, STATE_PAUSED = 0, 1, 2  # APScheduler's values
BROKER_ALIAS = "broker"
Listener = Callable[[Any], Any]  # receives a SchedulerEvent or one of its subclasses


class ExecutorSubmitter:
    """The core's submitter for one executor alias: the scheduler resolves the job's
    callable and fires SUBMITTED, the executor runs (or enqueues) it."""

    def __init__(self, scheduler: BaseScheduler, alias: str) -> None:
        self.scheduler = scheduler
        self.alias = alias

    @property
    def executor(self) -> BaseExecutor:
        return self.scheduler._executors[self.alias]

    def publications(self, entry: Entry, instant: datetime) -> list[Publication]:
        return self.executor.publications(entry, instant)

    def start(self, entry: Entry, instant: datetime, publications: Any, enqueued: bool) -> None:
        self.scheduler._launch(self.executor, entry, instant, publications, enqueued)

    def unfinished(self, pending: Any) -> list[tuple[str, float | None]]:
        return self.executor.unfinished(pending)

    def track(self, entry: Entry, run_ids: Any) -> list[tuple[str, float | None]]:
        return self.executor.track(entry, run_ids)


class BaseScheduler(JobAdmin):
    """APScheduler's constructor (``gconfig={}, **options``: timezone, job_defaults,
    executors, jobstores) plus keyword-only ``app``: without one, plain callables run in
    this process from a memory job store; with one, the default job store is the app's
    schedule store and an executor aliased ``broker`` enqueues @app.task functions.

    Shared by every scheduler flavour; a flavour supplies the loop's home (a thread, the
    calling thread, an event loop) and its default executor."""

    app: TaskQ | None
    core: SchedulerCore
    state: int

    def __init__(
        self,
        gconfig: dict[str, Any] | None = None,
        *,
        app: TaskQ | None = None,
        store: ScheduleStore | str | None = None,
        lock_ttl: float = DEFAULT_LOCK_TTL,
        heartbeat_path: str | None = None,
        clock: Clock = utc_now,
        **options: Any,
    ) -> None:
        config = merge_config(gconfig, options)
        self.app = app
        conf = app.finalize() if app is not None else None
        self.timezone_info: tzinfo = get_zone(config.get("timezone") or (conf.timezone if conf else "UTC")) or get_zone(
            "UTC"
        )  # type: ignore[assignment]
        self._job_defaults = job_defaults(config.get("job_defaults"))
        self._clock = clock
        self._lock_ttl = lock_ttl
        self._heartbeat_path = heartbeat_path
        self._listeners: list[tuple[Listener, int]] = []
        self._listeners_lock = threading.Lock()
        self._executors: dict[str, BaseExecutor] = {}
        self._jobstores: dict[str, ScheduleStore] = {}
        self._running_runs: set[str] = set()
        self._runs_lock = threading.Lock()
        self._init_jobs()
        self.state = STATE_STOPPED
        self._router = JobStoreRouter(self._jobstores, lambda: self._target_store)
        for alias, value in (config.get("executors") or {}).items():
            self.add_executor(build_plugin(value, "executor"), alias)
        for alias, value in (config.get("jobstores") or {}).items():
            self.add_jobstore(build_plugin(value, "jobstore"), alias)
        if app is not None and "default" not in self._jobstores:
            # With an app, the default job store is the app's schedule store (DESIGN.md section 7).
            opened = store if isinstance(store, ScheduleStore) else open_store(store or conf.beat_store, app.broker)  # type: ignore[union-attr]
            self.add_jobstore(opened, "default")
        elif isinstance(store, (ScheduleStore, str)) and "default" not in self._jobstores:
            self.add_jobstore(store if isinstance(store, ScheduleStore) else open_store(store), "default")
        self.core = self._new_core()

    def _new_core(self) -> SchedulerCore:
        core = SchedulerCore(
            self._router,  # type: ignore[arg-type]
            {},
            clock=self._clock,
            lock_ttl=self._lock_ttl,
            config_entries=entries_from_app(self.app) if self.app is not None else (),
            heartbeat_path=self._heartbeat_path,
        )
        core.submitters = {alias: ExecutorSubmitter(self, alias) for alias in self._executors}  # type: ignore[misc]
        core.sink.add(self._on_beat_event)
        return core

    # -- state ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.state != STATE_STOPPED

    def now(self) -> datetime:
        return self._clock().astimezone(self.timezone_info)

    def wakeup(self) -> None:
        """Recompute the next due time now."""
        self.core.wake()
        self._router.wake()

    def start(self, paused: bool = False) -> None:
        if self.running:
            raise SchedulerAlreadyRunningError()
        self._prepare_start()
        if self.core.stopping:  # started again after a shutdown
            self.core = self._new_core()
        if "default" not in self._executors:
            self.add_executor(self._create_default_executor(), "default")
        if self.app is not None and BROKER_ALIAS not in self._executors:
            from taskq.beat.executors.broker import BrokerExecutor

            self.add_executor(BrokerExecutor(self.app), BROKER_ALIAS)
        for alias, executor in list(self._executors.items()):
            executor.start(self, alias)
        if "default" not in self._jobstores:
            self.add_jobstore(MemoryJobStore(), "default")
        self._flush_pending()
        self.state = STATE_PAUSED if paused else STATE_RUNNING
        log.info("Scheduler started")
        self._dispatch(ev.SchedulerEvent(ev.EVENT_SCHEDULER_STARTED))
        if signals.beat_init.receivers:  # Celery's beat_init: the scheduler is the sender
            signals.beat_init.send(sender=self)
        self._start_loop()

    def shutdown(self, wait: bool = True) -> None:
        if not self.running:
            raise SchedulerNotRunningError()
        self.state = STATE_STOPPED
        self.core.stop()
        self._router.wake()
        self._stop_loop(wait)
        for executor in list(self._executors.values()):
            executor.shutdown(wait)
        log.info("Scheduler has been shut down")
        self._dispatch(ev.SchedulerEvent(ev.EVENT_SCHEDULER_SHUTDOWN))

    def pause(self) -> None:
        """Stop processing jobs (the loop keeps its place) until resume()."""
        if self.state == STATE_STOPPED:
            raise SchedulerNotRunningError()
        if self.state == STATE_RUNNING:
            self.state = STATE_PAUSED
            self._dispatch(ev.SchedulerEvent(ev.EVENT_SCHEDULER_PAUSED))

    def resume(self) -> None:
        if self.state == STATE_STOPPED:
            raise SchedulerNotRunningError()
        if self.state == STATE_PAUSED:
            self.state = STATE_RUNNING
            self._dispatch(ev.SchedulerEvent(ev.EVENT_SCHEDULER_RESUMED))
            self.wakeup()

    def run_loop(self) -> None:
        """The core's tick/wait loop, as every flavour runs it (in a thread, or the caller's).
        While paused it does not tick; resume() wakes it."""
        core = self.core
        core.emit(hook.STARTED, owner=core.owner, store=redact(core.store.url))
        try:
            while not core.stopping:
                if self.state == STATE_PAUSED:
                    core.wait(core.lock_ttl / 3)
                    continue
                core.wait(core.tick())
        finally:
            core.shutdown()

    # -- flavour hooks ---------------------------------------------------------------------------
    def _prepare_start(self) -> None:
        """Before anything starts (the asyncio flavour captures its event loop here)."""

    def _create_default_executor(self) -> BaseExecutor:
        from taskq.beat.executors.pool import ThreadPoolExecutor

        return ThreadPoolExecutor()

    def _start_loop(self) -> None:
        raise NotImplementedError

    def _stop_loop(self, wait: bool) -> None:
        """Wait for the loop to end (flavours with a thread or task override this)."""

    # -- executors and job stores ------------------------------------------------------------------
    def add_executor(self, executor: BaseExecutor | str, alias: str = "default", **executor_opts: Any) -> None:
        if isinstance(executor, str):
            executor = build_plugin({"type": executor, **executor_opts}, "executor")
        if alias in self._executors:
            raise ValueError(f'This scheduler already has an executor by the alias of "{alias}"')
        if not isinstance(executor, BaseExecutor):
            raise ConfigurationError(f"{executor!r} is not an executor")
        self._executors[alias] = executor
        if self.running:
            executor.start(self, alias)
        if hasattr(self, "core"):
            self.core.submitters[alias] = ExecutorSubmitter(self, alias)
        self._dispatch(ev.SchedulerEvent(ev.EVENT_EXECUTOR_ADDED, alias))

    def remove_executor(self, alias: str, shutdown: bool = True) -> None:
        executor = self._executors.pop(alias, None)
        if executor is None:
            raise KeyError(alias)
        self.core.submitters.pop(alias, None)
        if shutdown:
            executor.shutdown()
        self._dispatch(ev.SchedulerEvent(ev.EVENT_EXECUTOR_REMOVED, alias))

    def add_jobstore(self, jobstore: ScheduleStore | str, alias: str = "default", **jobstore_opts: Any) -> None:
        if isinstance(jobstore, str):
            jobstore = build_plugin({"type": jobstore, **jobstore_opts}, "jobstore")
        if alias in self._jobstores:
            raise ValueError(f'This scheduler already has a job store by the alias of "{alias}"')
        if not isinstance(jobstore, ScheduleStore):
            raise ConfigurationError(f"{jobstore!r} is not a job store")
        self._jobstores[alias] = jobstore
        self._dispatch(ev.SchedulerEvent(ev.EVENT_JOBSTORE_ADDED, alias))
        if self.running:
            self.wakeup()

    def remove_jobstore(self, alias: str, shutdown: bool = True) -> None:
        store = self._jobstores.pop(alias, None)
        if store is None:
            raise KeyError(alias)
        if shutdown:
            store.close()
        self._dispatch(ev.SchedulerEvent(ev.EVENT_JOBSTORE_REMOVED, alias))
        if self.running:
            self.wakeup()

    def add_beat_listener(self, sink: hook.EventSink) -> None:
        """Receive the core's own BeatEvents (the internal hook logging uses)."""
        self.core.sink.add(sink)

    # -- listeners -------------------------------------------------------------------------------------
    def add_listener(self, callback: Listener, mask: int = ev.EVENT_ALL) -> None:
        """Call ``callback(event)`` for events whose code is in ``mask``. A listener that
        raises is logged; the scheduler carries on."""
        with self._listeners_lock:
            self._listeners.append((callback, mask))

    def remove_listener(self, callback: Listener) -> None:
        with self._listeners_lock:
            self._listeners = [(cb, mask) for cb, mask in self._listeners if cb != callback]

    def _dispatch(self, event: ev.SchedulerEvent) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for callback, mask in listeners:
            if event.code & mask:
                try:
                    callback(event)
                except Exception:
                    log.exception("Error notifying listener %r", callback)

    # -- runs ---------------------------------------------------------------------------------------------
    def running_runs(self) -> set[str]:
        with self._runs_lock:
            return set(self._running_runs)

    def _launch(
        self, executor: BaseExecutor, entry: Entry, instant: datetime, publications: Any, enqueued: bool
    ) -> None:
        func = self._resolve(entry) if executor.runs_callables else _enqueued_elsewhere
        run = Run(
            entry.id,
            self._alias_for(entry.id),
            func,
            tuple(entry.args),
            dict(entry.kwargs),
            instant.astimezone(self.timezone_info),
            entry.task_id(instant),
        )
        if executor.runs_callables:
            with self._runs_lock:
                self._running_runs.add(run.run_id)
        submitted = ev.JobSubmissionEvent(ev.EVENT_JOB_SUBMITTED, run.job_id, run.jobstore, [run.scheduled_run_time])
        self._dispatch(submitted)
        try:
            executor.launch(run, entry, publications, enqueued)
        except Exception as exc:
            with self._runs_lock:
                self._running_runs.discard(run.run_id)
            if isinstance(exc, (TaskQError, OSError)):
                raise
            # The core reports a run that could not start as missed, and carries on.
            raise TaskQError(f"executor {self._executor_alias(executor)!r} refused the run: {exc}") from exc

    def _executor_alias(self, executor: BaseExecutor) -> str | None:
        return next((alias for alias, known in self._executors.items() if known is executor), None)

    def _run_finished(self, run: Run, outcome: Outcome) -> None:
        with self._runs_lock:
            self._running_runs.discard(run.run_id)
        if outcome.exception is None:
            code = ev.EVENT_JOB_EXECUTED
            log.info('Job "%s" executed successfully', run.job_id)
        else:
            code = ev.EVENT_JOB_ERROR
            log.error('Job "%s" raised an exception\n%s', run.job_id, outcome.traceback or outcome.exception)
        event = ev.JobExecutionEvent(code, run.job_id, run.jobstore, run.scheduled_run_time, outcome.retval)
        event.exception, event.traceback = outcome.exception, outcome.traceback
        self._dispatch(event)

    def _resolve(self, entry: Entry) -> Callable[..., Any]:
        local = self._local_callable(entry)
        if local is not None:
            return local
        if ":" in entry.task:
            return resolve_reference(entry.task)
        if self.app is not None and entry.task in self.app.tasks:
            return self.app.tasks[entry.task]
        raise ConfigurationError(f"job {entry.id!r}: task {entry.task!r} is not registered in this process")

    # -- the core's hook, translated ------------------------------------------------------------------
    def _on_beat_event(self, event: hook.BeatEvent) -> None:
        job_id = event.entry_id
        if job_id is None:
            return
        alias = self._alias_for(job_id)
        local = [t.astimezone(self.timezone_info) for t in event.instants]
        if event.kind == hook.MISSED:
            reason = str(event.detail.get("reason", ""))
            if reason == "coalesced":
                return  # folded into the run that follows: APScheduler reports nothing either
            for instant in local:
                if reason == "misfire_grace_time":
                    self._dispatch(ev.JobSubmissionEvent(ev.EVENT_JOB_SUBMITTED, job_id, alias, [instant]))
                log.warning('Run time of job "%s" was missed by %s (%s)', job_id, self.now() - instant, reason)
                self._dispatch(ev.JobExecutionEvent(ev.EVENT_JOB_MISSED, job_id, alias, instant))
        elif event.kind == hook.MAX_INSTANCES:
            log.warning('Execution of job "%s" skipped: maximum number of running instances reached', job_id)
            self._dispatch(ev.JobSubmissionEvent(ev.EVENT_JOB_MAX_INSTANCES, job_id, alias, local))
        elif event.kind == hook.ENTRY_REMOVED and event.detail.get("reason") == "schedule finished":
            self._forget(job_id)
            self._dispatch(ev.JobEvent(ev.EVENT_JOB_REMOVED, job_id, alias))
        elif event.kind in (hook.ENTRY_ADDED, hook.ENTRY_MODIFIED):
            entry = self._router.get(job_id)  # the core reports before it keeps the entry
            if entry is not None and entry.source == "config":  # beat_schedule entries fire the same events
                code = ev.EVENT_JOB_ADDED if event.kind == hook.ENTRY_ADDED else ev.EVENT_JOB_MODIFIED
                self._dispatch(ev.JobEvent(code, job_id, alias))


def require_extra(module: str, extra: str, flavour: str) -> Any:
    """Import an optional flavour's library, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigurationError(f"{flavour} needs {module.split('.')[0]}: pip install 'taskq[{extra}]'") from None


def _enqueued_elsewhere(*args: Any, **kwargs: Any) -> None:
    raise ConfigurationError("this run is enqueued for a worker, not called here")
