"""Executors: where a due job runs, named by alias as in APScheduler. The scheduling core
hands each claimed run to the job's executor (through ``ExecutorSubmitter``, the core's
submitter protocol); the executor runs it and reports the outcome back to the scheduler,
which fires EVENT_JOB_EXECUTED or EVENT_JOB_ERROR.

An executor class needs only ``_do_submit(run)``; ``start``/``shutdown`` are optional.
In-process executors count a job's unfinished runs (``max_instances``) in the scheduler's
one registry of running runs, so the limit holds whichever executor a job moves to.
"""

from __future__ import annotations

import inspect
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from taskq.beat import events as ev
from taskq.beat.core.entry import Entry
from taskq.brokers.base import Publication
from taskq.errors import TaskQError

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.beat.job import Job


@dataclass
class Run:
    """One run of a job, as an executor sees it."""

    job_id: str
    jobstore: str | None
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    scheduled_run_time: datetime
    run_id: str


@dataclass
class Outcome:
    retval: Any = None
    exception: BaseException | None = None
    traceback: str | None = None


def call(func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Outcome:
    """Run the function; an exception becomes part of the outcome (never raised)."""
    try:
        return Outcome(retval=func(*args, **kwargs))
    except BaseException as exc:
        return Outcome(exception=exc, traceback="".join(traceback.format_exception(*sys.exc_info())))


class ExecutorHost(Protocol):
    """What an executor needs of its scheduler (``BaseScheduler`` is one): the app, the runs
    still going, and where to report an outcome. Declared here, below the scheduler, so that
    executors import nothing of it."""

    app: TaskQ | None

    def running_runs(self) -> set[str]: ...

    def _run_finished(self, run: Run, outcome: Outcome) -> None: ...


class MaxInstancesReachedError(TaskQError):
    """A job has ``max_instances`` runs unfinished (APScheduler's name; taskq's core checks
    the limit before a run is claimed and reports EVENT_JOB_MAX_INSTANCES)."""

    def __init__(self, job: Job) -> None:
        super().__init__(f'Job "{job.id}" has already reached its maximum number of instances ({job.max_instances})')


class BaseExecutor:
    """APScheduler's executor interface: start(scheduler, alias), shutdown(wait)."""

    _scheduler: ExecutorHost | None = None
    _alias: str | None = None

    def start(self, scheduler: ExecutorHost, alias: str) -> None:
        self._scheduler = scheduler
        self._alias = alias

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking runs; with ``wait``, return once the running ones have finished."""

    def _do_submit(self, run: Run) -> None:
        raise NotImplementedError

    def _finished(self, run: Run, outcome: Outcome) -> None:
        if self._scheduler is not None:
            self._scheduler._run_finished(run, outcome)

    # -- the core's submitter hooks; the broker executor overrides them -----------------
    def publications(self, entry: Entry, instant: datetime) -> list[Publication]:
        return []  # nothing to enqueue: the run happens in this process

    def launch(self, run: Run, entry: Entry, publications: Sequence[Publication], enqueued: bool) -> None:
        self._do_submit(run)

    def unfinished(self, pending: Sequence[tuple[str, float | None]]) -> list[tuple[str, float | None]]:
        running = self._scheduler.running_runs() if self._scheduler is not None else set()
        return [p for p in pending if p[0] in running]

    def track(self, entry: Entry, run_ids: Sequence[str]) -> list[tuple[str, float | None]]:
        return [(run_id, None) for run_id in run_ids]

    @property
    def runs_callables(self) -> bool:
        """True if the executor runs Python callables here (False: it sends tasks to workers)."""
        return True


def run_job(
    job: Job, jobstore_alias: str | None, run_times: Sequence[datetime], logger_name: str
) -> list[ev.JobExecutionEvent]:
    """APScheduler's helper for executors: run ``job`` once per run time in this thread and
    return the events (MISSED past ``misfire_grace_time``, else EXECUTED or ERROR)."""
    events: list[ev.JobExecutionEvent] = []
    for run_time in run_times:
        missed = _missed(job, jobstore_alias, run_time, logger_name)
        if missed is not None:
            events.append(missed)
            continue
        events.append(_executed(job, jobstore_alias, run_time, call(job.func, job.args, job.kwargs), logger_name))
    return events


async def run_coroutine_job(
    job: Job, jobstore_alias: str | None, run_times: Sequence[datetime], logger_name: str
) -> list[ev.JobExecutionEvent]:
    """``run_job`` for a coroutine function, awaited on the running event loop."""
    events: list[ev.JobExecutionEvent] = []
    for run_time in run_times:
        missed = _missed(job, jobstore_alias, run_time, logger_name)
        if missed is not None:
            events.append(missed)
            continue
        try:
            result = job.func(*job.args, **job.kwargs)
            outcome = Outcome(retval=await result if inspect.isawaitable(result) else result)
        except BaseException as exc:
            outcome = Outcome(exception=exc, traceback="".join(traceback.format_exception(*sys.exc_info())))
        events.append(_executed(job, jobstore_alias, run_time, outcome, logger_name))
    return events


def _missed(job: Job, alias: str | None, run_time: datetime, logger_name: str) -> ev.JobExecutionEvent | None:
    grace = job.misfire_grace_time
    late = datetime.now(timezone.utc) - run_time
    if grace is None or late <= timedelta(seconds=grace):
        return None
    logging.getLogger(logger_name).warning('Run time of job "%s" was missed by %s', job, late)
    return ev.JobExecutionEvent(ev.EVENT_JOB_MISSED, job.id, alias, run_time)


def _executed(
    job: Job, alias: str | None, run_time: datetime, outcome: Outcome, logger_name: str
) -> ev.JobExecutionEvent:
    logger = logging.getLogger(logger_name)
    if outcome.exception is None:
        logger.info('Job "%s" executed successfully', job)
        return ev.JobExecutionEvent(ev.EVENT_JOB_EXECUTED, job.id, alias, run_time, retval=outcome.retval)
    logger.error('Job "%s" raised an exception\n%s', job, outcome.traceback)
    return ev.JobExecutionEvent(
        ev.EVENT_JOB_ERROR, job.id, alias, run_time, exception=outcome.exception, traceback=outcome.traceback
    )
