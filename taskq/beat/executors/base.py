"""Executors: where a due job runs, named by alias as in APScheduler. The scheduling core
hands each claimed run to the job's executor (through ``ExecutorSubmitter``, the core's
submitter protocol); the executor runs it and reports the outcome back to the scheduler,
which fires EVENT_JOB_EXECUTED or EVENT_JOB_ERROR.

An executor class needs only ``_do_submit(run)``; ``start``/``shutdown`` are optional.
In-process executors count a job's unfinished runs (``max_instances``) in the scheduler's
one registry of running runs, so the limit holds whichever executor a job moves to.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskq.beat.entry import Entry
from taskq.brokers.base import Publication

if TYPE_CHECKING:
    from taskq.beat.scheduling import SchedulerAPI


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


class BaseExecutor:
    """APScheduler's executor interface: start(scheduler, alias), shutdown(wait)."""

    _scheduler: SchedulerAPI | None = None
    _alias: str | None = None

    def start(self, scheduler: SchedulerAPI, alias: str) -> None:
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
